/**
 * The thin native layer: the few libc calls this backend needs, bound through koffi on first use
 * (nothing is loaded at import). Every wrapper only calls the system and returns its status; the
 * errno of a failed call is captured right after it, before any other JavaScript can run a
 * system call. Callers validate their arguments first and turn a bad status into an error.
 * @module
 */
import { createRequire } from 'node:module';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';

type Koffi = (typeof import('koffi'))['default'];
type NativeFunction = (...args: unknown[]) => unknown;

/** The Linux architectures whose constants below are the generic ones (asm-generic/mman-common.h, unistd.h). */
const SUPPORTED_ARCHES: readonly string[] = ['x64', 'arm64', 'arm', 'ia32', 'riscv64', 'ppc64', 's390x', 'loong64'];

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
const MAP_FIXED = 0x10;
export const MADV_DONTFORK = 10;
export const MADV_DONTDUMP = 16;
export const MADV_WIPEONFORK = 18;
/** memfd_secret(2): 447 in the syscall numbering that every supported architecture shares. */
const SYS_MEMFD_SECRET = 447;
/** O_CLOEXEC, the only flag memfd_secret takes. */
export const O_CLOEXEC = 0o2000000;
export const RLIMIT_CORE = 4;
export const PR_SET_DUMPABLE = 4;

export const ENOMEM = 12;
export const EAGAIN = 11;
export const EPERM = 1;

/** The calls this backend makes. Each returns the C result; `errno()` is the errno of the last failed one. */
export interface Libc {
  /** The system page size in bytes. */
  readonly pageSize: number;
  /** `MAP_FAILED` as koffi returns it: (void *)-1. */
  readonly mapFailed: bigint;
  mmap(length: number, prot: number, flags: number, fd: number): bigint;
  /** mmap(address, length, prot, flags | MAP_FIXED, fd, 0): replaces whatever is mapped there, atomically. */
  mmapFixed(address: bigint, length: number, prot: number, flags: number, fd: number): bigint;
  munmap(address: bigint, length: number): number;
  mprotect(address: bigint, length: number, prot: number): number;
  mlock(address: bigint, length: number): number;
  munlock(address: bigint, length: number): number;
  madvise(address: bigint, length: number, advice: number): number;
  ftruncate(fd: number, length: number): number;
  close(fd: number): number;
  /** memfd_secret(flags) through syscall(2); a file descriptor or -1. */
  memfdSecret(flags: number): number;
  /** setrlimit(resource, { 0, 0 }). */
  setrlimitZero(resource: number): number;
  prctl(option: number, arg2: number): number;
  /** The kernel's id of the calling thread (gettid). */
  gettid(): number;
  /** The errno captured after the last failed call made through this object. */
  errno(): number;
  /** A Uint8Array over `length` bytes of native memory at `address` (no copy). */
  view(address: bigint, length: number): Uint8Array;
}

let cached: Libc | undefined;
let loadError: SecureMemoryError | undefined;

/** True on the platforms this backend supports: Linux on an architecture with the generic constants. */
function isSupportedPlatform(): boolean {
  return process.platform === 'linux' && SUPPORTED_ARCHES.includes(process.arch);
}

function libcCandidates(): string[] {
  const musl: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
  const arch = musl[process.arch];
  return arch === undefined ? ['libc.so.6'] : ['libc.so.6', `libc.musl-${arch}.so.1`];
}

function bind(): Libc {
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  let lib: ReturnType<Koffi['load']> | undefined;
  let lastError: unknown;
  for (const name of libcCandidates()) {
    try {
      lib = koffi.load(name);
      break;
    } catch (error) {
      lastError = error;
    }
  }
  if (lib === undefined) throw lastError;
  const fn = (prototype: string): NativeFunction => lib.func(prototype) as NativeFunction;

  const mmap = fn('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');
  const munmap = fn('int munmap(void *addr, size_t length)');
  const mprotect = fn('int mprotect(void *addr, size_t length, int prot)');
  const mlock = fn('int mlock(void *addr, size_t length)');
  const munlock = fn('int munlock(void *addr, size_t length)');
  const madvise = fn('int madvise(void *addr, size_t length, int advice)');
  const ftruncate = fn('int ftruncate(int fd, long length)');
  const close = fn('int close(int fd)');
  const syscall = fn('long syscall(long number, ...)');
  const prctl = fn('int prctl(int option, ...)');
  const getpagesize = fn('int getpagesize(void)');
  const gettid = fn('int gettid(void)');
  const rlimit = koffi.struct({ rlim_cur: 'unsigned long', rlim_max: 'unsigned long' });
  const setrlimit = lib.func('setrlimit', 'int', ['int', koffi.pointer(rlimit)]) as NativeFunction;

  let lastErrno = 0;
  /** Calls `f`; when the C result says failure, captures errno at once. */
  const call = (f: NativeFunction, failed: (result: unknown) => boolean, ...args: unknown[]): unknown => {
    const result = f(...args);
    if (failed(result)) lastErrno = koffi.errno();
    return result;
  };
  const isMinusOne = (r: unknown): boolean => Number(r) === -1;
  const mapFailed = (1n << BigInt(8 * koffi.sizeof('void *'))) - 1n;
  const asAddress = (r: unknown): bigint => (typeof r === 'bigint' ? r : r === null ? 0n : BigInt(r as number));
  const pageSize = Number(getpagesize());

  return {
    pageSize,
    mapFailed,
    mmap: (length, prot, flags, fd) =>
      asAddress(call(mmap, (r) => asAddress(r) === mapFailed || asAddress(r) === 0n, null, length, prot, flags, fd, 0)),
    mmapFixed: (address, length, prot, flags, fd) =>
      asAddress(call(mmap, (r) => asAddress(r) === mapFailed, address, length, prot, flags | MAP_FIXED, fd, 0)),
    munmap: (address, length) => Number(call(munmap, isMinusOne, address, length)),
    mprotect: (address, length, prot) => Number(call(mprotect, isMinusOne, address, length, prot)),
    mlock: (address, length) => Number(call(mlock, isMinusOne, address, length)),
    munlock: (address, length) => Number(call(munlock, isMinusOne, address, length)),
    madvise: (address, length, advice) => Number(call(madvise, isMinusOne, address, length, advice)),
    ftruncate: (fd, length) => Number(call(ftruncate, isMinusOne, fd, length)),
    close: (fd) => Number(call(close, isMinusOne, fd)),
    memfdSecret: (flags) => Number(call(syscall, isMinusOne, SYS_MEMFD_SECRET, 'unsigned int', flags)),
    setrlimitZero: (resource) => Number(call(setrlimit, isMinusOne, resource, { rlim_cur: 0, rlim_max: 0 })),
    prctl: (option, arg2) =>
      Number(call(prctl, isMinusOne, option, 'unsigned long', arg2, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0)),
    gettid: () => Number(gettid()),
    errno: () => lastErrno,
    view: (address, length) => new Uint8Array(koffi.view(address, length)),
  };
}

/**
 * The bound libc, loaded on first use and cached.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux (or on an architecture whose
 * constants differ); `ERR_BACKEND_UNAVAILABLE` (with `cause`) when koffi or libc cannot be loaded.
 */
export function libc(): Libc {
  if (!isSupportedPlatform()) {
    throw new SecureMemoryError(
      ErrorCode.UNSUPPORTED_PLATFORM,
      'protected-memory supports Linux only (x64, arm64, arm, ia32, riscv64, ppc64, s390x, loong64)',
      { backend: 'protected-memory' },
    );
  }
  if (cached !== undefined) return cached;
  if (loadError !== undefined) throw loadError;
  try {
    cached = bind();
    return cached;
  } catch (error) {
    loadError = new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'protected-memory cannot load koffi or libc', {
      backend: 'protected-memory',
      cause: error,
    });
    throw loadError;
  }
}
