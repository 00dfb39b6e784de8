/**
 * memguard's Enclave: a secret sealed (ChaCha20-Poly1305, OpenSSL) under the process key, so that
 * at rest it is ciphertext in ordinary memory and costs no locked memory. `open()` decrypts it
 * straight into a guarded, locked LockedBuffer leased from the pool; the plaintext never passes
 * through the JavaScript heap.
 * @module
 */
import {
  ErrorCode,
  SecureMemoryError,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  MAX_SECRET_SIZE,
  assertBytes,
  assertSize,
  describeType,
  invalidThis,
  Redacted,
} from '@secure-memory/core/backend';
import { LockedBuffer, bufferRegion, leaseBuffer } from './buffer.js';
import { BACKEND, frozen, integrityError, prepared } from './errors.js';
import { SEAL_DIRECT_MIN, type Sealed, openInto, readyKey, sealAt, sealFrom } from './key.js';
import { addon } from './native.js';
import { GuardedRegion } from './region.js';
import { Ledger } from './mapping.js';
import { assertReadable, writable } from './views.js';

/** Proves an Enclave was made by this module. */
const TOKEN: unique symbol = Symbol('Enclave');


/** The regions that hold plaintext for an instant while something is sealed (random bytes). */
const staging = new Ledger();

/** The sealed box of each Enclave, for the test hooks. */
const boxes = new WeakMap<Enclave, Sealed>();

/**
 * Opens `sealed` into a new, frozen LockedBuffer leased from the pool.
 * @throws {SecureMemoryError} `ERR_INTEGRITY` when it was sealed before a purge or was tampered with;
 * `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED` when no region can be had.
 */
export function openSealed(sealed: Sealed, debug = false): LockedBuffer {
  const { buffer, region } = leaseBuffer(sealed.size, debug);
  return prepared(buffer, () => {
    openInto(sealed, region.data);
    region.protect('read');
  });
}

/**
 * An encrypted container for a secret, after memguard's Enclave. Make one with {@link newEnclave},
 * {@link newEnclaveRandom} or {@link seal}; read it with {@link Enclave.open}. It holds only
 * ciphertext (and may be opened any number of times); it needs no `destroy()`.
 * @example
 * ```ts
 * const enclave = newEnclaveRandom(32);
 * using key = enclave.open();                  // a frozen LockedBuffer
 * const tag = createHmac('sha256', key.bytes()).update(data).digest();
 * ```
 */
export class Enclave extends Redacted {
  readonly #sealed: Sealed;

  /** @internal Use {@link newEnclave}, {@link newEnclaveRandom} or {@link seal}. */
  constructor(token: typeof TOKEN, sealed: Sealed) {
    super();
    if (token !== TOKEN) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, 'Enclave has no public constructor: use newEnclave()');
    }
    this.#sealed = sealed;
    boxes.set(this, sealed);
  }

  static #check(self: unknown): Enclave {
    if (typeof self === 'object' && self !== null && #sealed in self) return self as Enclave;
    throw invalidThis('Enclave');
  }

  /** The number of plaintext bytes. */
  get size(): number {
    return Enclave.#check(this).#sealed.size;
  }

  /**
   * Decrypts the Enclave straight into a new guarded, locked LockedBuffer, **frozen** (read-only),
   * as memguard's Open. The buffer's region comes from the pool: destroy it as soon as you are done
   * (`using`), which wipes it and gives it back. The Enclave is unchanged and may be opened again.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when the ciphertext was modified, or when it was
   * sealed before a `purge()` (the process key it needs is gone); `ERR_MEMLOCK_LIMIT`,
   * `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED` when no region can be had.
   * @example
   * ```ts
   * using key = enclave.open();
   * sign(key.bytes(), message);
   * ```
   */
  open(): LockedBuffer {
    return openSealed(Enclave.#check(this).#sealed);
  }

  /** The redacted form, such as `Enclave(32 bytes)`. */
  override toString(): string {
    return `Enclave(${Enclave.#check(this).#sealed.size} bytes)`;
  }

  get [Symbol.toStringTag](): string {
    return 'Enclave';
  }
}

/**
 * Seals a copy of `src` into a new Enclave, then zero-fills `src` (memguard's NewEnclave). The bytes
 * are copied into a guarded region, sealed from there, and wiped; `src.buffer` is never read (see
 * {@link sealCopy}).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `src` is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when detached.
 * @throws {RangeError} `ERR_INVALID_SIZE` when `src` is empty or larger than 1 GiB.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when `src` is a read-only view of this
 * package's memory (it could not be wiped; nothing is sealed); errors of the process key's memory
 * (`ERR_MEMLOCK_LIMIT`...) on the first use in the process.
 * @example
 * ```ts
 * const enclave = newEnclave(keyBytes); // keyBytes is zeroed
 * ```
 */
export function newEnclave(src: Uint8Array): Enclave {
  assertBytes(src, 'src');
  assertReadable(src);
  assertSize(src.byteLength, 'src.byteLength', MAX_SECRET_SIZE);
  if (!writable(src)) throw frozen('The "src" argument');
  const sealed = sealCopy(src);
  src.fill(0);
  return new Enclave(TOKEN, sealed);
}

/**
 * Seals a copy of `bytes` into a new container. An array of {@link SEAL_DIRECT_MIN} bytes or more is
 * sealed straight from where it is (V8 never keeps such an array's bytes inside the heap: reading it
 * natively moves nothing). A smaller one is copied (TypedArray.prototype.set, which reads a small
 * array's bytes where they are, without moving them off the V8 heap) into a guarded region of the
 * pool, sealed from there, and wiped: native code never reads a small caller's array, which would
 * make V8 move its bytes off the heap and abandon an unwiped copy. The caller wipes `bytes`.
 * @throws {SecureMemoryError} as {@link GuardedRegion.lease} and `sealAt`.
 */
export function sealCopy(bytes: Uint8Array): Sealed {
  readyKey();
  if (bytes.byteLength >= SEAL_DIRECT_MIN) return sealFrom(bytes);
  const region = GuardedRegion.lease(bytes.byteLength, staging);
  let sealed: Sealed;
  try {
    const view = region.view(true);
    try {
      view.set(bytes);
    } finally {
      region.revoke(view);
    }
    sealed = sealAt(region.data, region.size);
  } finally {
    // biome-ignore lint/correctness/noUnsafeFinally: a damaged canary outranks the error in flight: ERR_INTEGRITY must surface
    if (!region.destroy()) throw integrityError();
  }
  return sealed;
}

/**
 * An Enclave of `size` CSPRNG bytes (OpenSSL's), generated into a guarded region of the pool,
 * sealed from there, and wiped.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number.
 * @throws {RangeError} `ERR_INVALID_SIZE` unless it is a whole number from 1 to 1 GiB.
 * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
 */
export function newEnclaveRandom(size: number): Enclave {
  assertSize(size, 'size', MAX_SECRET_SIZE);
  const region = GuardedRegion.lease(size, staging);
  let sealed: Sealed;
  try {
    if (addon().random(region.data, size) !== 0) {
      throw new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'OpenSSL failed to generate random bytes', { backend: BACKEND });
    }
    sealed = sealAt(region.data, size);
  } finally {
    // biome-ignore lint/correctness/noUnsafeFinally: a damaged canary outranks the error in flight: ERR_INTEGRITY must surface
    if (!region.destroy()) throw integrityError();
  }
  return new Enclave(TOKEN, sealed);
}

/**
 * Seals the contents of `buffer` into a new Enclave and destroys the buffer (memguard's Seal).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `buffer` is not a LockedBuffer.
 * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when it was destroyed; `ERR_INTEGRITY` when its
 * canary was damaged (it is destroyed all the same, and no Enclave is returned).
 * @example
 * ```ts
 * const buf = newBufferFromFd(fd, 32);
 * const enclave = seal(buf); // buf is destroyed
 * ```
 */
export function seal(buffer: LockedBuffer): Enclave {
  if (!(buffer instanceof LockedBuffer)) {
    throw new SecureMemoryTypeError(
      ErrorCode.INVALID_ARG_TYPE,
      `The "buffer" argument must be a LockedBuffer. Received ${describeType(buffer)}`,
    );
  }
  const region = bufferRegion(buffer); // ERR_SECRET_CLOSED when destroyed
  const sealed = sealAt(region.data, region.size);
  buffer.destroy();
  return new Enclave(TOKEN, sealed);
}

/** Test hook: the live ciphertext box of an Enclave (`[nonce: 12][ciphertext][tag: 16]`). */
export function enclaveBox(enclave: Enclave): Uint8Array {
  const sealed = boxes.get(enclave);
  if (sealed === undefined) throw invalidThis('Enclave');
  return sealed.box;
}
