/**
 * The thin native layer: sodium-native (libsodium) for the secure allocations, and a few libc calls
 * through koffi for what sodium-native does not say (the address of a buffer, whether mlock held,
 * whether an mmap would succeed). Both are loaded on first use, never at import. Every wrapper only
 * calls the system and returns its status; the errno of a failed libc call is captured at once.
 * @module
 */
import { createRequire } from 'node:module';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';

/** The backend's short name, as errors and secrets show it. */
export const BACKEND = 'sodium';

/** Linux architectures whose mmap constants are the generic ones and for which sodium-native ships a prebuild or builds. */
export const SUPPORTED_ARCHES: readonly string[] = ['x64', 'arm64', 'arm', 'ia32', 'riscv64', 'ppc64', 's390x', 'loong64'];

/** libsodium's canary: 16 bytes right before the data (`CANARY_SIZE` in utils.c). */
export const CANARY_SIZE = 16;

/** The mappings one `sodium_malloc` adds: base page, leading guard page, unprotected pages, trailing guard page. */
export const MAPPINGS_PER_SECRET = 4;

/** mmap(2) protection: readable. */
export const PROT_READ = 1;
/** mmap(2) protection: writable. */
export const PROT_WRITE = 2;
/** mmap(2) flag: a private mapping. */
export const MAP_PRIVATE = 0x02;
/** mmap(2) flag: not backed by a file (the generic value; the supported architectures share it). */
export const MAP_ANONYMOUS = 0x20;
/** errno: no CAP_IPC_LOCK and a zero RLIMIT_MEMLOCK. */
export const EPERM = 1;
/** errno: some of the range could not be locked. */
export const EAGAIN = 11;
/** errno: out of memory, over RLIMIT_MEMLOCK, or at vm.max_map_count. */
export const ENOMEM = 12;

/** A buffer from sodium-native's `sodium_malloc`: a Buffer over an external ArrayBuffer of exactly the size asked for. */
export type SodiumBuffer = Buffer & { secure?: boolean };

/** The part of sodium-native this backend calls. Each one throws a plain Error on a bad status. */
export interface SodiumNative {
  sodium_malloc(size: number): SodiumBuffer;
  /** Detaches the ArrayBuffer; libsodium's `sodium_free` runs later, from the buffer's finalizer. */
  sodium_free(buf: SodiumBuffer): void;
  sodium_mprotect_noaccess(buf: SodiumBuffer): void;
  sodium_mprotect_readonly(buf: SodiumBuffer): void;
  sodium_mprotect_readwrite(buf: SodiumBuffer): void;
  sodium_memzero(buf: ArrayBufferView): void;
}

/** The native calls the backend makes besides sodium-native's. */
export interface Native {
  readonly sodium: SodiumNative;
  /** The system page size in bytes. */
  readonly pageSize: number;
  /** The address of the first byte of a buffer's memory. */
  address(buf: Uint8Array): bigint;
  /** mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) then munmap: 0 when the kernel would grant it, else the errno. */
  probeMap(length: number): number;
  /** mlock(address, length): 0 or -1. */
  mlock(address: bigint, length: number): number;
  /** munlock(address, length): 0 or -1. */
  munlock(address: bigint, length: number): number;
  /** The errno captured after the last failed libc call made through this object. */
  errno(): number;
  /** A Uint8Array over `length` bytes of native memory at `address` (no copy; valid while that memory is mapped). */
  view(address: bigint, length: number): Uint8Array;
}

type Koffi = (typeof import('koffi'))['default'];
type NativeFunction = (...args: unknown[]) => unknown;

let cached: Native | undefined;
let loadError: SecureMemoryError | undefined;

/** True on the platforms this backend supports: Linux on an architecture with the generic constants. */
export function isSupportedPlatform(): boolean {
  return process.platform === 'linux' && SUPPORTED_ARCHES.includes(process.arch);
}

function libcCandidates(): string[] {
  const musl: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
  const arch = musl[process.arch];
  return arch === undefined ? ['libc.so.6'] : ['libc.so.6', `libc.musl-${arch}.so.1`];
}

function bind(): Native {
  const require = createRequire(import.meta.url);
  const sodium = require('sodium-native') as SodiumNative;
  const koffi = require('koffi') as Koffi;
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
  const mlock = fn('int mlock(void *addr, size_t length)');
  const munlock = fn('int munlock(void *addr, size_t length)');
  const getpagesize = fn('int getpagesize(void)');

  const mapFailed = (1n << BigInt(8 * koffi.sizeof('void *'))) - 1n;
  const asAddress = (r: unknown): bigint => (typeof r === 'bigint' ? r : r === null ? 0n : BigInt(r as number));
  let lastErrno = 0;

  return {
    sodium,
    pageSize: Number(getpagesize()),
    address: (buf) => asAddress(koffi.address(buf)),
    probeMap(length) {
      const address = asAddress(mmap(null, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      if (address === mapFailed || address === 0n) {
        lastErrno = koffi.errno();
        return lastErrno;
      }
      munmap(address, length);
      return 0;
    },
    mlock(address, length) {
      const result = Number(mlock(address, length));
      if (result !== 0) lastErrno = koffi.errno();
      return result;
    },
    munlock(address, length) {
      const result = Number(munlock(address, length));
      if (result !== 0) lastErrno = koffi.errno();
      return result;
    },
    errno: () => lastErrno,
    view: (address, length) => new Uint8Array(koffi.view(address, length)),
  };
}

/**
 * sodium-native and libc, loaded on first use and cached.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux (or on an architecture whose
 * constants differ); `ERR_BACKEND_UNAVAILABLE` (with `cause`) when sodium-native, koffi or libc cannot be loaded.
 */
export function native(): Native {
  if (cached !== undefined) return cached;
  if (!isSupportedPlatform()) {
    throw new SecureMemoryError(
      ErrorCode.UNSUPPORTED_PLATFORM,
      `The sodium backend supports Linux only (${SUPPORTED_ARCHES.join(', ')})`,
      { backend: BACKEND },
    );
  }
  if (loadError !== undefined) throw loadError;
  try {
    cached = bind();
    return cached;
  } catch (error) {
    loadError = new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'The sodium backend cannot load sodium-native, koffi or libc', {
      backend: BACKEND,
      cause: error,
    });
    throw loadError;
  }
}
