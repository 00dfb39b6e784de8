/**
 * The addon, loaded on first use through node-gyp-build (a prebuild from `prebuilds/` or the binary
 * built at install in `build/Release`). Its functions only call libsodium and the system and return
 * statuses; every argument is validated before it gets here (native/crypto.cc and its aead.cc, mac.cc, memory.cc).
 * @module
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { MapBudget, memlockLimitError, systemError } from '@secure-memory/core/backend';

/** The short name errors carry in `backend`. */
export const PACKAGE = 'crypto';

/** A key state or scratch mapping: opaque to TypeScript. */
export type Handle = { readonly __handle: unique symbol };

/** A system call that failed in the addon. */
export interface NativeFailure {
  errno: number;
  syscall: string;
}

/** The addon's functions (exported by native/crypto.cc). */
export interface Addon {
  /** sodium_init() succeeded. */
  readonly ready: boolean;
  /** libsodium's AES-256-GCM runs here (it needs AES-NI and PCLMUL). */
  readonly aesGcmAvailable: boolean;
  readonly sodiumVersion: string;
  /** A locked pool slot with the key's state (kind: 0 AES-256-GCM, 1 ChaCha20-Poly1305, 2 XChaCha20-Poly1305). */
  keyNew(kind: number, key: Uint8Array): Handle | NativeFailure;
  /** Wipes a key state and gives its slot back now; idempotent. */
  keyFree(state: Handle): void;
  /** Nonce, ciphertext and tag of `message` into `box`: 0, or -1. */
  seal(state: Handle, message: Uint8Array, aad: Uint8Array | undefined, box: Uint8Array): number;
  /** Checks and decrypts `box` into `out`: 0; 1 when the tag fails (out zeroed); -1 on a freed state. */
  open(state: Handle, box: Uint8Array, aad: Uint8Array | undefined, out: Uint8Array): number;
  /** HMAC (hash: 0 SHA-256, 1 SHA-512) of `data` under `key` into `out`: 0, or a failure. */
  hmac(hash: number, key: Uint8Array, data: Uint8Array, out: Uint8Array): number | NativeFailure;
  /** HKDF of `ikm` into `out`: 0, or a failure. */
  hkdf(hash: number, ikm: Uint8Array, salt: Uint8Array | undefined, info: Uint8Array | undefined, out: Uint8Array): number | NativeFailure;
  /** Locked scratch memory of `size` bytes (a pool slot up to SLOT_BYTES, else a mapping of its own), or a failure. */
  scratchNew(size: number): { buffer: ArrayBuffer; handle: Handle } | NativeFailure;
  /** Detaches the buffer, wipes and releases the scratch memory; idempotent. */
  scratchFree(buffer: ArrayBuffer, handle: Handle): void;
  /** Bytes of a pool slot: key states and scratch memory up to this size take one. */
  readonly SLOT_BYTES: number;
  /** Bytes the pool maps (and locks) at a time. */
  readonly POOL_CHUNK_BYTES: number;
}

/** The package root, the same from src/ (tests) and dist/. */
const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

let loaded: Addon | undefined;

/**
 * The addon, loaded once.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when no
 * binary for this platform was built or prebuilt, or libsodium does not initialise.
 */
export function addon(): Addon {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'linux') {
    throw new SecureMemoryError(ErrorCode.UNSUPPORTED_PLATFORM, `@secure-memory/crypto supports Linux only, not ${process.platform}`, {
      backend: PACKAGE,
    });
  }
  let candidate: Addon;
  try {
    const load = createRequire(import.meta.url)('node-gyp-build') as (dir: string) => Addon;
    candidate = load(PACKAGE_ROOT);
  } catch (cause) {
    throw new SecureMemoryError(
      ErrorCode.BACKEND_UNAVAILABLE,
      'The @secure-memory/crypto addon is not built for this platform: run `npm rebuild @secure-memory/crypto` with a C++ toolchain and libsodium-dev',
      { backend: PACKAGE, cause },
    );
  }
  if (!candidate.ready) {
    throw new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'libsodium failed to initialise (sodium_init)', { backend: PACKAGE });
  }
  loaded = candidate;
  return loaded;
}

/** True when `value` is the addon's report of a failed system call. */
export function isFailure(value: unknown): value is NativeFailure {
  return typeof value === 'object' && value !== null && typeof (value as NativeFailure).errno === 'number';
}

/** The typed error of a failed system call in the addon: `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`. */
export function nativeError(failure: NativeFailure, requested: number): SecureMemoryError {
  const { errno: code, syscall } = failure;
  const { EAGAIN, ENOMEM, EPERM } = constants.errno;
  if (syscall === 'mlock' && (code === EAGAIN || code === ENOMEM || code === EPERM)) {
    return memlockLimitError(requested, { backend: PACKAGE, errno: code, syscall });
  }
  return systemError(PACKAGE, ErrorCode.ALLOCATION_FAILED, syscall, code, requested);
}

/** The scratch mappings of their own this package holds (for more than a slot), kept clear of `vm.max_map_count`. */
export const mapBudget = new MapBudget(PACKAGE, 1);
