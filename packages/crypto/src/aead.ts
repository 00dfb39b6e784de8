/**
 * AEAD with a key that stays in protected memory: `aead(algorithm, key)` reads the Secret once and
 * keeps the key's state (AES-256-GCM's expanded key and GHASH powers, or the ChaCha20 key) in a
 * locked slot, left out of core dumps, that `close()` wipes.
 * @module
 */
import { ErrorCode, SecureMemoryError, SecureMemoryTypeError, type Secret, type SecretFactory } from '@secure-memory/core';
import { Redacted, assertBytes, assertOptions, describeType, invalidThis } from '@secure-memory/core/backend';
import { assertFactory, assertMaxLength, assertOptionalBytes, assertSecret, assertSecretSize } from './assert.js';
import { useSecretBytes } from './read.js';
import { fillSecret } from './fill.js';
import { type Handle, PACKAGE, addon, isFailure, nativeError } from './native.js';

/** The AEAD algorithms. */
export const AEAD_ALGORITHMS = ['aes-256-gcm', 'chacha20-poly1305', 'xchacha20-poly1305'] as const;

/** One of {@link AEAD_ALGORITHMS}. */
export type AeadAlgorithm = (typeof AEAD_ALGORITHMS)[number];

/** Options of seal, open, wrap and unwrap. */
export interface AeadOptions {
  /** Additional authenticated data: bound to the box, not encrypted. */
  aad?: Uint8Array;
}

/** Bytes of every key: 32. */
export const AEAD_KEY_BYTES = 32;

/** Bytes of the authentication tag at the end of a box: 16. */
export const AEAD_TAG_BYTES = 16;

/** The largest message seal accepts: 1 GiB. */
export const AEAD_MAX_MESSAGE_BYTES = 2 ** 30;

const KIND: Record<AeadAlgorithm, number> = { 'aes-256-gcm': 0, 'chacha20-poly1305': 1, 'xchacha20-poly1305': 2 };
const NONCE_BYTES: Record<AeadAlgorithm, number> = { 'aes-256-gcm': 12, 'chacha20-poly1305': 12, 'xchacha20-poly1305': 24 };

function integrityError(): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.INTEGRITY, 'The box failed authentication: wrong key, wrong aad, or tampered with', {
    backend: PACKAGE,
  });
}

function closedError(): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.SECRET_CLOSED, 'The aead is closed', { backend: PACKAGE });
}

/** Reads `options.aad`, checked. */
function aadOf(options: unknown, label: string): Uint8Array | undefined {
  assertOptions(options, label);
  const aad = options?.aad;
  assertOptionalBytes(aad, `${label}.aad`);
  return aad;
}

/**
 * An AEAD key in use (its state in a slot of a locked pool; an aead that becomes unreachable
 * without close is wiped by the garbage collector). Boxes are `nonce ‖ ciphertext ‖ tag` with a fresh random nonce each, in the
 * layout node:crypto and libsodium read: 12-byte nonce for AES-256-GCM and ChaCha20-Poly1305
 * (IETF), 24-byte for XChaCha20-Poly1305; a 16-byte tag. Disposable: `close()` wipes the key state.
 */
export class Aead extends Redacted implements Disposable {
  /** The algorithm. */
  readonly algorithm: AeadAlgorithm;
  /** Bytes of the nonce at the start of a box. */
  readonly nonceBytes: number;
  /** Bytes a box adds to its message: nonce and tag. */
  readonly overhead: number;
  #state: Handle | undefined;

  /** @internal Use {@link aead}. */
  constructor(algorithm: AeadAlgorithm, state: Handle) {
    super();
    this.algorithm = algorithm;
    this.nonceBytes = NONCE_BYTES[algorithm];
    this.overhead = this.nonceBytes + AEAD_TAG_BYTES;
    this.#state = state;
  }

  static #check(self: unknown): Aead {
    if (typeof self === 'object' && self !== null && #state in self) return self as Aead;
    throw invalidThis('Aead');
  }

  #live(): Handle {
    if (this.#state === undefined) throw closedError();
    return this.#state;
  }

  /** True once closed. */
  get closed(): boolean {
    return Aead.#check(this).#state === undefined;
  }

  #seal(state: Handle, message: Uint8Array, aad: Uint8Array | undefined): Uint8Array {
    const box = new Uint8Array(this.overhead + message.byteLength);
    if (addon().seal(state, message, aad, box) !== 0) throw closedError();
    return box;
  }

  #opened(box: Uint8Array, label: string): number {
    assertBytes(box, label);
    if (box.byteLength < this.overhead) throw integrityError();
    return box.byteLength - this.overhead;
  }

  /**
   * Encrypts and authenticates `plaintext` (and `aad`) under a fresh random nonce.
   * @returns `nonce ‖ ciphertext ‖ tag`
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a `plaintext`, `options` or `aad` of the wrong type; `ERR_INVALID_ARG_VALUE` when detached.
   * @throws {RangeError} `ERR_INVALID_SIZE` when `plaintext` is over 1 GiB.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after close.
   * @example
   * ```ts
   * using gcm = aead('aes-256-gcm', kek);
   * const box = gcm.seal(Buffer.from('record'), { aad: Buffer.from('tenant-7') });
   * ```
   */
  seal(plaintext: Uint8Array, options?: AeadOptions): Uint8Array {
    const self = Aead.#check(this);
    const state = self.#live();
    assertBytes(plaintext, 'plaintext');
    assertMaxLength(plaintext.byteLength, 'plaintext', AEAD_MAX_MESSAGE_BYTES);
    const aad = aadOf(options, 'options');
    return self.#seal(state, plaintext, aad);
  }

  /**
   * Checks and decrypts a box made by {@link Aead.seal} (or by node:crypto or libsodium in the same layout).
   * The plaintext is ordinary memory: for keys, use {@link Aead.unwrap}.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when the box, the aad or the key is not the one sealed (also for a box shorter than nonce and tag); `ERR_SECRET_CLOSED` after close.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for arguments of the wrong type.
   */
  open(box: Uint8Array, options?: AeadOptions): Uint8Array {
    const self = Aead.#check(this);
    const state = self.#live();
    const size = self.#opened(box, 'box');
    const aad = aadOf(options, 'options');
    const plaintext = new Uint8Array(size);
    const rc = addon().open(state, box, aad, plaintext);
    if (rc === 1) throw integrityError();
    if (rc !== 0) throw closedError();
    return plaintext;
  }

  /**
   * Seals the bytes of `secret` (a data key) straight from its memory: they never enter ordinary memory.
   * @returns `nonce ‖ ciphertext ‖ tag`, for {@link Aead.unwrap}
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `secret` is not a Secret or `options`/`aad` have the wrong type.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when this aead or `secret` is closed.
   * @example
   * ```ts
   * using dataKey = factory.createRandom(32);
   * const wrapped = kekAead.wrap(dataKey, { aad });
   * ```
   */
  wrap(secret: Secret, options?: AeadOptions): Uint8Array {
    const self = Aead.#check(this);
    const state = self.#live();
    assertSecret(secret, 'secret');
    const aad = aadOf(options, 'options');
    return useSecretBytes(secret, 'secret', (bytes) => self.#seal(state, bytes, aad));
  }

  /**
   * Checks and decrypts a wrapped key straight into a new Secret of `factory`: in place when the
   * factory can be filled in place, else through locked scratch memory that is wiped.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when the box, the aad or the key is not the one wrapped (nothing is kept); `ERR_SECRET_CLOSED` after close; the factory's allocation errors.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for arguments of the wrong type.
   * @throws {RangeError} `ERR_INVALID_SIZE` when the box holds an empty message (a Secret is never empty).
   * @example
   * ```ts
   * using dataKey = kekAead.unwrap(wrapped, factory, { aad });
   * using dek = aead('aes-256-gcm', dataKey);
   * ```
   */
  unwrap(wrapped: Uint8Array, factory: SecretFactory, options?: AeadOptions): Secret {
    const self = Aead.#check(this);
    const state = self.#live();
    const size = self.#opened(wrapped, 'wrapped');
    assertFactory(factory, 'factory');
    const aad = aadOf(options, 'options');
    if (size === 0) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, 'The "wrapped" box holds an empty message, which no Secret can hold');
    }
    return fillSecret(factory, size, (writable) => {
      const rc = addon().open(state, wrapped, aad, writable);
      if (rc === 1) throw integrityError();
      if (rc !== 0) throw closedError();
    });
  }

  /** Wipes the key state and gives its slot back. Idempotent. */
  close(): void {
    const self = Aead.#check(this);
    const state = self.#state;
    if (state === undefined) return;
    self.#state = undefined;
    addon().keyFree(state);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The redacted form, such as `Aead(aes-256-gcm)`. */
  override toString(): string {
    const self = Aead.#check(this);
    return `Aead(${self.algorithm}${self.#state === undefined ? ', closed' : ''})`;
  }

  get [Symbol.toStringTag](): string {
    return 'Aead';
  }
}

/**
 * An AEAD whose key is `key`'s bytes, read once (through `reader()` and locked scratch memory, see
 * `useSecretBytes`) into a locked slot that
 * core dumps leave out; `key` may be closed afterwards. Close the aead (or `using`) to wipe it.
 * @param algorithm `'aes-256-gcm'`, `'chacha20-poly1305'` (IETF, 12-byte nonce) or `'xchacha20-poly1305'`
 * @param key a 32-byte Secret of any backend
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an unknown algorithm; `ERR_INVALID_ARG_TYPE` when `key` is not a Secret.
 * @throws {RangeError} `ERR_INVALID_SIZE` when `key` is not 32 bytes.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` for AES-256-GCM on a CPU without AES-NI and PCLMUL (libsodium's AES-GCM needs them; use a ChaCha20 construction there); `ERR_SECRET_CLOSED` when `key` is closed; `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED`.
 * @example
 * ```ts
 * import { aead } from '@secure-memory/crypto';
 * using gcm = aead('aes-256-gcm', kek);
 * const box = gcm.seal(plaintext, { aad });
 * const again = gcm.open(box, { aad });
 * ```
 */
export function aead(algorithm: AeadAlgorithm, key: Secret): Aead {
  if (typeof algorithm !== 'string') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "algorithm" argument must be a string. Received ${describeType(algorithm)}`);
  }
  if (!Object.hasOwn(KIND, algorithm)) {
    throw new SecureMemoryTypeError(
      ErrorCode.INVALID_ARG_VALUE,
      `The "algorithm" argument must be one of ${AEAD_ALGORITHMS.map((a) => `'${a}'`).join(', ')}`,
    );
  }
  assertSecret(key, 'key');
  assertSecretSize(key, 'key', [AEAD_KEY_BYTES]);
  const native = addon();
  if (algorithm === 'aes-256-gcm' && !native.aesGcmAvailable) {
    throw new SecureMemoryError(
      ErrorCode.UNSUPPORTED_PLATFORM,
      "libsodium's AES-256-GCM needs a CPU with AES-NI and PCLMUL; use 'xchacha20-poly1305' here",
      { backend: PACKAGE },
    );
  }
  const state = useSecretBytes(key, 'key', (bytes) => native.keyNew(KIND[algorithm], bytes));
  if (isFailure(state)) throw nativeError(state, native.POOL_CHUNK_BYTES);
  return new Aead(algorithm, state);
}
