/**
 * HMAC and HKDF with keys read from a Secret without ordinary memory (`useSecretBytes`); the HMAC
 * states and HKDF's pseudorandom key live in a locked work page, left out of core dumps and wiped
 * after each call.
 * @module
 */
import { ErrorCode, SecureMemoryRangeError, SecureMemoryTypeError, type Secret, type SecretFactory } from '@secure-memory/core';
import { assertBytes, describeType } from '@secure-memory/core/backend';
import { assertFactory, assertMaxLength, assertOptionalBytes, assertSecret } from './assert.js';
import { useSecretBytes } from './read.js';
import { fillSecret } from './fill.js';
import { addon, isFailure, nativeError } from './native.js';

/** The hash functions of HMAC and HKDF. */
export const HASH_ALGORITHMS = ['sha256', 'sha512'] as const;

/** One of {@link HASH_ALGORITHMS}. */
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];

const HASH: Record<HashAlgorithm, { id: number; bytes: number }> = {
  sha256: { id: 0, bytes: 32 },
  sha512: { id: 1, bytes: 64 },
};

/** The largest message, salt or info accepted: 1 GiB. */
const MAX_INPUT_BYTES = 2 ** 30;

/** The work page, for the memlock error. */
const WORK_BYTES = 4096;

function hashOf(algorithm: unknown): { id: number; bytes: number } {
  if (typeof algorithm !== 'string') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "algorithm" argument must be a string. Received ${describeType(algorithm)}`);
  }
  if (!Object.hasOwn(HASH, algorithm)) {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `The "algorithm" argument must be one of 'sha256', 'sha512'`);
  }
  return HASH[algorithm as HashAlgorithm];
}

/**
 * HMAC-SHA-256 or HMAC-SHA-512 of `data` under `key`, read without ordinary memory.
 * @param key a Secret of any backend, of any size (keys longer than the hash's block are hashed, as RFC 2104 says)
 * @returns the tag: 32 or 64 bytes
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an unknown algorithm; `ERR_INVALID_ARG_TYPE` for a `key` that is not a Secret or `data` that is not a Uint8Array.
 * @throws {RangeError} `ERR_INVALID_SIZE` when `data` is over 1 GiB.
 * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when `key` is closed; `ERR_MEMLOCK_LIMIT` or `ERR_ALLOCATION_FAILED` when the work page cannot be had.
 * @example
 * ```ts
 * const tag = hmac('sha256', macKey, Buffer.from('message'));
 * ```
 */
export function hmac(algorithm: HashAlgorithm, key: Secret, data: Uint8Array): Uint8Array {
  const hash = hashOf(algorithm);
  assertSecret(key, 'key');
  assertBytes(data, 'data');
  assertMaxLength(data.byteLength, 'data', MAX_INPUT_BYTES);
  const native = addon();
  const tag = new Uint8Array(hash.bytes);
  const status = useSecretBytes(key, 'key', (bytes) => native.hmac(hash.id, bytes, data, tag));
  if (isFailure(status)) throw nativeError(status, WORK_BYTES);
  return tag;
}

/** Options of {@link hkdf}. */
export interface HkdfOptions {
  /** The salt (RFC 5869: optional; none means HashLen zero bytes). */
  salt?: Uint8Array;
  /** The context and application-specific information (optional). */
  info?: Uint8Array;
  /** Bytes to derive: 1 to 255 × the hash's length (8160 for SHA-256, 16320 for SHA-512). */
  length: number;
}

/**
 * HKDF (RFC 5869, extract then expand) of `ikm` into a new Secret of `factory`. The key material
 * never enters ordinary memory: the output is written in place where the factory allows it, else
 * into locked scratch memory that is wiped.
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for an unknown algorithm; `ERR_INVALID_ARG_TYPE` for arguments of the wrong type.
 * @throws {RangeError} `ERR_INVALID_SIZE` for a `length` that is not a whole number from 1 to 255 × the hash's length.
 * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when `ikm` is closed; the factory's allocation errors.
 * @example
 * ```ts
 * using sub = hkdf('sha256', master, { salt, info: Buffer.from('tenant-7'), length: 32 }, factory);
 * ```
 */
export function hkdf(algorithm: HashAlgorithm, ikm: Secret, options: HkdfOptions, factory: SecretFactory): Secret {
  const hash = hashOf(algorithm);
  assertSecret(ikm, 'ikm');
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "options" argument must be an object. Received ${describeType(options)}`);
  }
  const { salt, info, length } = options;
  assertOptionalBytes(salt, 'options.salt');
  assertOptionalBytes(info, 'options.info');
  if (salt !== undefined) assertMaxLength(salt.byteLength, 'options.salt', MAX_INPUT_BYTES);
  if (info !== undefined) assertMaxLength(info.byteLength, 'options.info', MAX_INPUT_BYTES);
  const max = 255 * hash.bytes;
  if (typeof length !== 'number') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "options.length" option must be a number. Received ${describeType(length)}`);
  }
  if (!Number.isInteger(length) || length < 1 || length > max) {
    throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, `The "options.length" option must be a whole number from 1 to ${max}. Received ${String(length)}`);
  }
  assertFactory(factory, 'factory');
  const native = addon();
  return fillSecret(factory, length, (writable) => {
    const status = useSecretBytes(ikm, 'ikm', (bytes) => native.hkdf(hash.id, bytes, salt, info, writable));
    if (isFailure(status)) throw nativeError(status, WORK_BYTES);
  });
}
