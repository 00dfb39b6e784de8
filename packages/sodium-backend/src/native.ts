/**
 * The thin native layer: sodium-native (libsodium) for the secure allocations, and a few libc calls
 * through koffi for what sodium-native does not say (the address of a buffer, whether mlock held,
 * whether an mmap would succeed, the errno of a failed mprotect). Both are loaded on first use, never
 * at import. Every wrapper only calls the system and returns its status; the errno of a failed libc
 * call is captured at once. libc is the shared binding of `@secure-memory/system`. There is no switch
 * in here: tests replace this module's {@link native} (`vi.mock`) with {@link createNative} over
 * wrapped sodium-native and libc objects, as protected-memory's tests replace its libc module.
 * @module
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { readResourceLimit } from '@secure-memory/core/backend';
import { ENOMEM, type Libc, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, SUPPORTED_ARCHES, isSupportedPlatform, libc } from '@secure-memory/system';

/** The backend's short name, as errors and secrets show it. */
export const BACKEND = 'sodium';

/** libsodium's canary: 16 bytes right before the data (`CANARY_SIZE` in utils.c). */
export const CANARY_SIZE = 16;

/** The mappings one `sodium_malloc` adds: base page, leading guard page, unprotected pages, trailing guard page. */
export const MAPPINGS_PER_SECRET = 4;

/** madvise(2)'s MADV_DONTDUMP, and the errnos the backend tells apart (EPERM, EAGAIN, ENOMEM): the system layer's. */
export { EAGAIN, ENOMEM, EPERM, MADV_DONTDUMP } from '@secure-memory/system';

/** A buffer from sodium-native's `sodium_malloc`: a Buffer over an external ArrayBuffer of exactly the size asked for. */
export type SodiumBuffer = Buffer & { secure?: boolean };

/** The protections of `sodium_mprotect_*`. */
export type Protection = 'noaccess' | 'readonly' | 'readwrite';

/** The part of sodium-native this backend calls. Each one throws a plain Error on a bad status. */
export interface SodiumNative {
  sodium_malloc(size: number): SodiumBuffer;
  sodium_free(buf: SodiumBuffer): void;
  sodium_mprotect_noaccess(buf: SodiumBuffer): void;
  sodium_mprotect_readonly(buf: SodiumBuffer): void;
  sodium_mprotect_readwrite(buf: SodiumBuffer): void;
  sodium_memzero(buf: ArrayBufferView): void;
}

/**
 * The native calls of the backend, sodium-native's and libc's. The ones that can fail return 0 or
 * the errno, captured at once; none of them throws for a failed system call.
 */
export interface Native {
  /** The system page size in bytes. */
  readonly pageSize: number;
  /** The address of the first byte of a buffer's memory. */
  address(buf: Uint8Array): bigint;
  /**
   * mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) then munmap: 0 when the
   * kernel would grant the mapping, else the errno of mmap. A probe mapping whose munmap fails twice
   * is kept aside and unmapped by {@link Native.settle} (the next probe, or the next free).
   */
  probeMap(length: number): number;
  /** Unmaps the probe mappings whose munmap failed, if any; returns how many are still left. */
  settle(): number;
  /**
   * Whether an anonymous mapping of a few pages can be refused for want of memory here, so that
   * {@link Native.probeMap} must ask the kernel before each `sodium_malloc` (whose NULL aborts the
   * process): when RLIMIT_AS is finite or `vm.overcommit_memory` is 2 (strict accounting), both read
   * once when the native layer loads (or as {@link createNative} is told). Otherwise only the mapping
   * count can refuse one, and the mapping budget keeps a reserve under it.
   */
  mapMayFail(): boolean;
  /**
   * sodium-native's `sodium_malloc(size)`: the buffer, or the errno when libsodium returned no
   * memory (ENOMEM, as libsodium sets it). Throws what sodium-native throws. `quiet` is true when
   * errno stayed 0 through the call: no call libsodium made failed, so its `madvise(MADV_DONTDUMP)`
   * and its `mlock` (whose results it ignores) both held (a successful call never sets errno, and
   * errno is cleared right before).
   */
  malloc(size: number): { buf: SodiumBuffer; quiet: boolean } | number;
  /** sodium-native's `sodium_free`: detaches the buffer; libsodium frees it on a later turn of the event loop. */
  free(buf: SodiumBuffer): void;
  /**
   * `sodium_mprotect_<protection>(buf)`; when libsodium reports a failure (it keeps no errno for
   * us), the same mprotect on the same pages (`start`, `length`: what libsodium itself protects),
   * to learn the errno and to take a failure that passed. 0 or the errno.
   */
  protect(buf: SodiumBuffer, protection: Protection, start: bigint, length: number): number;
  /** `sodium_memzero`. */
  memzero(view: ArrayBufferView): void;
  /** mlock(address, length): 0 or the errno. */
  mlock(address: bigint, length: number): number;
  /** munlock(address, length): 0 or the errno. */
  munlock(address: bigint, length: number): number;
  /** madvise(address, length, advice): 0 or the errno. */
  madvise(address: bigint, length: number, advice: number): number;
  /** A Uint8Array over `length` bytes of native memory at `address` (no copy; valid while that memory is mapped). */
  view(address: bigint, length: number): Uint8Array;
}

let cached: Native | undefined;
let loadError: SecureMemoryError | undefined;

/** The numeric `errno` a thrown error carries, if any. */
export function errnoOf(error: unknown): number | undefined {
  const errno = typeof error === 'object' && error !== null ? (error as { errno?: unknown }).errno : undefined;
  return typeof errno === 'number' ? errno : undefined;
}

const PROT: Record<Protection, number> = { noaccess: 0, readonly: PROT_READ, readwrite: PROT_READ | PROT_WRITE };

/**
 * Whether this process can be refused a small anonymous mapping for want of memory: RLIMIT_AS
 * finite (/proc/self/limits) or strict overcommit accounting (/proc/sys/vm/overcommit_memory 2).
 * When either cannot be read, true.
 */
function addressSpaceLimited(): boolean {
  const { soft, hard } = readResourceLimit('Max address space');
  if (soft !== Number.POSITIVE_INFINITY || hard !== Number.POSITIVE_INFINITY) return true;
  try {
    return readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim() === '2';
  } catch {
    return true;
  }
}

/**
 * The backend's native layer over a sodium-native and a libc: {@link native} gives it the real ones,
 * tests give it wrapped ones (to fail a chosen call, or to log the calls).
 * @param mapsMayBeRefused - what {@link Native.mapMayFail} answers.
 * @public Exported for the package's tests (test/fault-seam.ts reaches it through `vi.mock`'s
 * `importOriginal`, which knip cannot follow); not exported from the package entry.
 */
export function createNative(sodium: SodiumNative, lib: Libc, mapsMayBeRefused: boolean): Native {
  const mprotects: Record<Protection, (buf: SodiumBuffer) => void> = {
    noaccess: (buf) => sodium.sodium_mprotect_noaccess(buf),
    readonly: (buf) => sodium.sodium_mprotect_readonly(buf),
    readwrite: (buf) => sodium.sodium_mprotect_readwrite(buf),
  };
  /** A libc status (0 or -1) as 0 or the errno captured with it. */
  const status = (result: number): number => (result === 0 ? 0 : lib.errno());
  /** Probe mappings whose munmap failed: unmapped by settle(). */
  const leftover: Array<[bigint, number]> = [];

  const native: Native = {
    pageSize: lib.pageSize,
    address: (buf) => lib.address(buf),
    probeMap(length) {
      if (leftover.length !== 0) native.settle();
      const address = lib.mmap(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
      if (address === lib.mapFailed || address === 0n) return lib.errno();
      // munmap of a whole mapping just made does not split anything: a failure can only be
      // transient. Try twice, then keep it for settle() rather than refuse a secret the kernel granted.
      if (lib.munmap(address, length) !== 0 && lib.munmap(address, length) !== 0) leftover.push([address, length]);
      return 0;
    },
    settle() {
      if (leftover.length === 0) return 0;
      for (let i = leftover.length - 1; i >= 0; i -= 1) {
        const [address, length] = leftover[i] as [bigint, number];
        if (lib.munmap(address, length) === 0) leftover.splice(i, 1);
      }
      return leftover.length;
    },
    mapMayFail: () => mapsMayBeRefused,
    malloc(size) {
      lib.currentErrno(0);
      const buf = sodium.sodium_malloc(size);
      const quiet = lib.currentErrno() === 0;
      if (buf.byteLength === size) return { buf, quiet };
      sodium.sodium_free(buf);
      return ENOMEM;
    },
    free: (buf) => sodium.sodium_free(buf),
    protect(buf, protection, start, length) {
      try {
        mprotects[protection](buf);
        return 0;
      } catch {
        return status(lib.mprotect(start, length, PROT[protection]));
      }
    },
    memzero: (view) => sodium.sodium_memzero(view),
    mlock: (address, length) => status(lib.mlock(address, length)),
    munlock: (address, length) => status(lib.munlock(address, length)),
    madvise: (address, length, advice) => status(lib.madvise(address, length, advice)),
    view: (address, length) => lib.view(address, length),
  };
  return native;
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
    const require = createRequire(import.meta.url);
    cached = createNative(require('sodium-native') as SodiumNative, libc(BACKEND), addressSpaceLimited());
    return cached;
  } catch (error) {
    loadError = new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'The sodium backend cannot load sodium-native, koffi or libc', {
      backend: BACKEND,
      cause: error,
    });
    throw loadError;
  }
}
