/**
 * The addon, loaded on first use through node-gyp-build (a prebuild from `prebuilds/` or the binary
 * built at install in `build/Release`). Its functions only make system calls and return statuses;
 * every argument is validated before it gets here.
 * @module
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { BACKEND } from './errors.js';

/** The addon's functions (native/memguard.cc). Addresses are BigInts, lengths whole numbers. */
export interface Addon {
  pageSize(): number;
  /** mmap of private anonymous PROT_NONE memory: the address, or the errno as a number. */
  map(length: number): bigint | number;
  /** munmap: 0 or the errno. */
  unmap(address: bigint, length: number): number;
  /** mprotect: 0 or the errno. */
  protect(address: bigint, length: number, prot: number): number;
  /** mlock: 0 or the errno. */
  lock(address: bigint, length: number): number;
  /** munlock: 0 or the errno. */
  unlock(address: bigint, length: number): number;
  /** madvise: 0 or the errno. */
  advise(address: bigint, length: number, advice: number): number;
  /** explicit_bzero of writable memory. */
  wipe(address: bigint, length: number): void;
  /** An external ArrayBuffer over the memory, without a finalizer. */
  view(address: bigint, length: number): ArrayBuffer;
  /** napi_detach_arraybuffer: 0 or the napi_status. */
  detach(buffer: ArrayBuffer): number;
  /** read(2) into the memory (EINTR retried, EAGAIN waited for): bytes read, or a negative errno. */
  read(fd: number, address: bigint, length: number): number;
  /** setrlimit(RLIMIT_CORE, 0): 0 or the errno. */
  disableCoreDumps(): number;
  /** ns per mprotect PROT_READ + PROT_NONE pair on one page, or a negative errno. */
  floorMprotectPair(iterations: number): number;
  /** ns per guarded allocation and free of one page, or a negative errno. */
  floorGuardedAlloc(iterations: number): number;
  readonly PROT_NONE: number;
  readonly PROT_READ: number;
  readonly PROT_WRITE: number;
  readonly MADV_DONTDUMP: number;
  readonly MADV_WIPEONFORK: number;
  readonly ENOMEM: number;
  readonly EPERM: number;
  readonly EAGAIN: number;
  readonly EINVAL: number;
}

/** The package root, the same from src/ (tests) and dist/. */
const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

let loaded: Addon | undefined;

/**
 * The addon, loaded once.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when no
 * binary for this platform was built or prebuilt.
 */
export function addon(): Addon {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'linux') {
    throw new SecureMemoryError(ErrorCode.UNSUPPORTED_PLATFORM, `memguard supports Linux only, not ${process.platform}`, {
      backend: BACKEND,
    });
  }
  try {
    const load = createRequire(import.meta.url)('node-gyp-build') as (dir: string) => Addon;
    loaded = load(PACKAGE_ROOT);
  } catch (cause) {
    throw new SecureMemoryError(
      ErrorCode.BACKEND_UNAVAILABLE,
      'The memguard addon is not built for this platform: run `npm rebuild @secure-memory/memguard` with a C++ toolchain',
      { backend: BACKEND, cause },
    );
  }
  return loaded;
}
