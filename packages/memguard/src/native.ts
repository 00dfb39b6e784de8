/**
 * The addon, loaded on first use through node-gyp-build (a prebuild from `prebuilds/` or the binary
 * built at install in `build/Release`). Its functions only make system calls or OpenSSL calls (of
 * the OpenSSL inside Node.js) and return statuses; every argument is validated before it gets here.
 * @module
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { BACKEND } from './errors.js';

/** The addon's functions (native/memguard.cc and the sources it names). Addresses are BigInts, lengths whole numbers. */
export interface Addon {
  pageSize(): number;
  /** mmap of private anonymous PROT_NONE memory: the address, or the errno as a number. */
  map(length: number): bigint | number;
  /** munmap: 0 or the errno. */
  unmap(address: bigint, length: number): number;
  /** mprotect: 0 or the errno. */
  protect(address: bigint, length: number, prot: number): number;
  /**
   * The calls that make a fresh guarded mapping ready, in one: mprotect(inner, READ|WRITE), mlock
   * (mlock2 ONFAULT when `onFault`), madvise(base, DONTDUMP), madvise(base, WIPEONFORK); stops at
   * the first that fails. 0, or step * 65536 + errno (step 1 to 4, in that order).
   */
  prepare(base: bigint, total: number, inner: bigint, innerLength: number, onFault: boolean): number;
  /** munlock of the inner pages (failure ignored: munmap unlocks too), then munmap: 0 or munmap's errno. */
  release(inner: bigint, innerLength: number, base: bigint, total: number): number;
  /** madvise: 0 or the errno. */
  advise(address: bigint, length: number, advice: number): number;
  /** explicit_bzero of writable memory. */
  wipe(address: bigint, length: number): void;
  /**
   * An external ArrayBuffer over the memory; `token` is listed by releasedViews() once V8 releases
   * its memory. Token 0: not listed (no finalizer), for views this package detaches itself.
   */
  view(address: bigint, length: number, token: number): ArrayBuffer;
  /** The tokens of the views whose memory V8 released since the last call. */
  releasedViews(): number[];
  /** napi_detach_arraybuffer: 0 or the napi_status. */
  detach(buffer: ArrayBuffer): number;
  /** read(2) into the memory (EINTR retried, EAGAIN waited for): bytes read, or a negative errno. */
  read(fd: number, address: bigint, length: number): number;
  /** Fills the memory with `pattern` repeated (writable memory). */
  canaryFill(address: bigint, length: number, pattern: Uint8Array): void;
  /** 1 when the memory is still `pattern` repeated, else 0 (readable memory). */
  canaryIntact(address: bigint, length: number, pattern: Uint8Array): number;
  /** canaryIntact, then explicit_bzero of `wipeLength` writable bytes at `wipeAddress`, in one call: 1 when intact, else 0 (wiped either way). */
  canaryCheckWipe(address: bigint, length: number, pattern: Uint8Array, wipeAddress: bigint, wipeLength: number): number;
  /** setrlimit(RLIMIT_CORE, 0): 0 or the errno. */
  disableCoreDumps(): number;
  /**
   * A PROT_NONE reservation of `total` bytes with `length` bytes of memfd_secret memory mapped
   * read-write at `offset`: the reservation's address, or an errno as a number (ENOSYS: no secret
   * memory here, whatever memfd_secret said; EAGAIN: RLIMIT_MEMLOCK).
   */
  mapSecret(total: number, offset: number, length: number): bigint | number;
  /** OpenSSL's CSPRNG straight into the memory: 0, or -1. */
  random(address: bigint, length: number): number;
  /** A fresh random pre-key and right part in the key state: 0, or -1. */
  keyInit(state: bigint): number;
  /** key = SHA-256(pre-key) XOR right, into the state's key slot: 0, or -1. */
  keyDerive(state: bigint): number;
  /** Re-randomises the pre-key and the right part, keeping the key: 0, or -1 (state unchanged). */
  keyRekey(state: bigint): number;
  /**
   * ChaCha20-Poly1305 of `length` readable bytes at `address` into `box` (nonce already in its first
   * 12 bytes), bound to the container `id` (associated data): 0, or -1.
   */
  sealAt(state: bigint, address: bigint, length: number, box: Uint8Array, id: number): number;
  /**
   * As sealAt, from the bytes of `source` (a Uint8Array far larger than V8 keeps inside the heap:
   * see `SEAL_DIRECT_MIN`): 0, or -1.
   */
  sealFrom(state: bigint, source: Uint8Array, box: Uint8Array, id: number): number;
  /** Checks and decrypts `box`, bound to the container `id`, into the memory at `destination`: 0; 1 when the tag fails; -1. */
  open(state: bigint, box: Uint8Array, destination: bigint, id: number): number;
  /** True only in the test build (native/extra), which has the fault seam; false in the release addon. */
  readonly TEST_SEAM: boolean;
  /** Bytes of the key state: pre-key, right part, key, hashes, scratch. */
  readonly KEY_STATE_BYTES: number;
  /** Bytes of the pre-key (16 KiB), at the start of the key state. */
  readonly PRE_KEY_BYTES: number;
  /** Where the derived key is in the key state. */
  readonly KEY_OFFSET: number;
  /** Bytes of the derived key. */
  readonly KEY_BYTES: number;
  /** Bytes a sealed box adds to its plaintext: nonce and tag. */
  readonly SEAL_OVERHEAD: number;
  /** Bytes of the nonce at the start of a sealed box. */
  readonly NONCE_BYTES: number;
  readonly PROT_NONE: number;
  readonly PROT_READ: number;
  readonly PROT_WRITE: number;
  readonly MADV_DONTDUMP: number;
  readonly MADV_WIPEONFORK: number;
  readonly MADV_DONTFORK: number;
  readonly ENOMEM: number;
  readonly EPERM: number;
  readonly EAGAIN: number;
  readonly EINVAL: number;
  readonly ENOSYS: number;
  readonly EBADMSG: number;
}

/** The package root, the same from src/ (tests) and dist/. */
const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

let loaded: Addon | undefined;

/**
 * @internal For this package's own tests only (src/testing.ts, which is not published): makes every
 * later call use `lib`, the test build of the same addon (native/extra), which has the fault seam.
 * Not reachable from the package's entry points; the test build is never built at install.
 */
export function useAddon(lib: Addon): void {
  loaded = lib;
}

/** The package root, for the development addons (native/extra/build/Release). */
export const packageRoot = PACKAGE_ROOT;

/**
 * The addon, loaded once.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when no
 * binary for this platform was built or prebuilt, or when no file descriptor was free to load it
 * (`errno` EMFILE or ENFILE, the system error as `cause`: the next use tries again).
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
    throw loadError(cause);
  }
  return loaded;
}

/** Errors that mean "no file descriptor to spare", not "no binary". */
const NO_DESCRIPTOR = new Set(['EMFILE', 'ENFILE']);

/**
 * Why the addon did not load. node-gyp-build reports a directory it could not list as "no native
 * build was found", and a failed dlopen keeps only the message: when the process (or the system) has
 * no free file descriptor, that is the cause to report, with its errno, and the next use tries
 * again (nothing is cached after a failure).
 */
function loadError(cause: unknown): SecureMemoryError {
  let shortage = (cause as NodeJS.ErrnoException | undefined)?.code;
  let why: unknown = cause;
  if (shortage === undefined || !NO_DESCRIPTOR.has(shortage)) {
    try {
      closeSync(openSync(PACKAGE_ROOT, 'r'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== undefined && NO_DESCRIPTOR.has(code)) {
        shortage = code;
        why = error;
      }
    }
  }
  if (shortage !== undefined && NO_DESCRIPTOR.has(shortage)) {
    return new SecureMemoryError(
      ErrorCode.BACKEND_UNAVAILABLE,
      `The memguard addon could not be loaded: no free file descriptor (${shortage}); it is loaded at the next use once one is free`,
      { backend: BACKEND, errno: constants.errno[shortage as 'EMFILE' | 'ENFILE'], syscall: 'open', cause: why },
    );
  }
  return new SecureMemoryError(
    ErrorCode.BACKEND_UNAVAILABLE,
    'The memguard addon is not built for this platform: run `npm rebuild @secure-memory/memguard` with a C++ toolchain',
    { backend: BACKEND, cause },
  );
}
