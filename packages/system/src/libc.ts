/**
 * The one libc binding of secure-memory: the few calls its packages make, bound through koffi on
 * first use (nothing is loaded at import). Every wrapper only calls the system and returns its C
 * result; the errno of a failed call is captured right after it, before any other JavaScript can
 * make a system call. Callers validate their arguments first and turn a bad status into an error.
 * The constants are Linux's generic ones (asm-generic/mman-common.h, unistd.h).
 *
 * Addresses are `void *` parameters passed as bigint: measured against `uintptr_t` (bigint or
 * number), the fastest per call with koffi 3.3 (see the package README).
 * @module
 */
import { createRequire } from 'node:module';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';

type Koffi = (typeof import('koffi'))['default'];
type NativeFunction = (...args: unknown[]) => unknown;

/** The Linux architectures whose constants below are the generic ones. */
export const SUPPORTED_ARCHES: readonly string[] = ['x64', 'arm64', 'arm', 'ia32', 'riscv64', 'ppc64', 's390x', 'loong64'];

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
const MAP_FIXED = 0x10;
/** madvise(2) MADV_RANDOM: sets VM_RAND_READ, which only steers readahead (none for locked anonymous memory). */
export const MADV_RANDOM = 1;
export const MADV_DONTFORK = 10;
export const MADV_DONTDUMP = 16;
export const MADV_WIPEONFORK = 18;
/** memfd_secret(2): 447 in the syscall numbering that every supported architecture shares. */
const SYS_MEMFD_SECRET = 447;
/** O_CLOEXEC, the only flag memfd_secret takes. */
export const O_CLOEXEC = 0o2000000;
export const RLIMIT_CORE = 4;
export const PR_SET_DUMPABLE = 4;
export const PR_GET_DUMPABLE = 3;

export const EPERM = 1;
export const EAGAIN = 11;
export const ENOMEM = 12;

/** The libc calls. Each returns the C result; `errno()` is the errno of the last failed one. */
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
  /** prctl(option, arg2, 0, 0, 0). */
  prctl(option: number, arg2: number): number;
  /** The kernel's id of the calling thread (gettid). */
  gettid(): number;
  /** The errno captured after the last failed call made through this object. */
  errno(): number;
  /** The thread's errno as it is now (not captured); with `value`, sets it first. */
  currentErrno(value?: number): number;
  /** The address of the first byte of a typed array's memory. */
  address(view: ArrayBufferView): bigint;
  /** A Uint8Array over `length` bytes of native memory at `address` (no copy). */
  view(address: bigint, length: number): Uint8Array;
  /** Reads one byte at `address` through memcpy (faults if it is not readable). */
  peek(address: bigint): number;
  /** Writes one byte at `address` through memset (faults if it is not writable). */
  poke(address: bigint, value: number): void;
}

let cached: Libc | undefined;
let loadCause: unknown;

/** True on the platforms whose constants this module has: Linux on an architecture with the generic ones. */
export function isSupportedPlatform(): boolean {
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
  const memcpyIn = fn('void *memcpy(_Out_ uint8_t *dst, void *src, size_t n)');
  const memset = fn('void *memset(void *s, int c, size_t n)');
  const rlimit = koffi.struct({ rlim_cur: 'unsigned long', rlim_max: 'unsigned long' });
  const setrlimit = lib.func('setrlimit', 'int', ['int', koffi.pointer(rlimit)]) as NativeFunction;

  let lastErrno = 0;
  /** The C result of an int call; when it is -1, errno is captured at once. */
  const status = (result: unknown): number => {
    const r = result as number;
    if (r === -1) lastErrno = koffi.errno();
    return r;
  };
  const mapFailed = (1n << BigInt(8 * koffi.sizeof('void *'))) - 1n;
  const asAddress = (r: unknown): bigint => (typeof r === 'bigint' ? r : r === null ? 0n : BigInt(r as number));
  /** An mmap result; on MAP_FAILED (or NULL when `nullFails`), errno is captured at once. */
  const mapped = (result: unknown, nullFails: boolean): bigint => {
    const address = asAddress(result);
    if (address === mapFailed || (nullFails && address === 0n)) lastErrno = koffi.errno();
    return address;
  };
  const one = Buffer.alloc(1);

  return {
    pageSize: Number(getpagesize()),
    mapFailed,
    mmap: (length, prot, flags, fd) => mapped(mmap(null, length, prot, flags, fd, 0), true),
    mmapFixed: (address, length, prot, flags, fd) => mapped(mmap(address, length, prot, flags | MAP_FIXED, fd, 0), false),
    munmap: (address, length) => status(munmap(address, length)),
    mprotect: (address, length, prot) => status(mprotect(address, length, prot)),
    mlock: (address, length) => status(mlock(address, length)),
    munlock: (address, length) => status(munlock(address, length)),
    madvise: (address, length, advice) => status(madvise(address, length, advice)),
    ftruncate: (fd, length) => status(ftruncate(fd, length)),
    close: (fd) => status(close(fd)),
    memfdSecret: (flags) => status(Number(syscall(SYS_MEMFD_SECRET, 'unsigned int', flags))),
    setrlimitZero: (resource) => status(setrlimit(resource, { rlim_cur: 0, rlim_max: 0 })),
    prctl: (option, arg2) =>
      status(prctl(option, 'unsigned long', arg2, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0)),
    gettid: () => Number(gettid()),
    errno: () => lastErrno,
    currentErrno: (value) => (value === undefined ? koffi.errno() : koffi.errno(value)),
    address: (view) => asAddress(koffi.address(view)),
    view: (address, length) => new Uint8Array(koffi.view(address, length)),
    peek(address) {
      memcpyIn(one, address, 1);
      return one[0] as number;
    },
    poke(address, value) {
      memset(address, value, 1);
    },
  };
}

/**
 * The bound libc, loaded on first use and cached (a failed load is remembered too).
 * @param backend - the name the errors carry (`backend`), and their messages say.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux (or on an architecture whose
 * constants differ); `ERR_BACKEND_UNAVAILABLE` (with `cause`) when koffi or libc cannot be loaded.
 */
export function libc(backend = 'system'): Libc {
  if (cached !== undefined) return cached;
  if (!isSupportedPlatform()) {
    throw new SecureMemoryError(ErrorCode.UNSUPPORTED_PLATFORM, `${backend} supports Linux only (${SUPPORTED_ARCHES.join(', ')})`, {
      backend,
    });
  }
  if (loadCause === undefined) {
    try {
      cached = bind();
      return cached;
    } catch (error) {
      loadCause = error;
    }
  }
  throw new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, `${backend} cannot load koffi or libc`, { backend, cause: loadCause });
}
