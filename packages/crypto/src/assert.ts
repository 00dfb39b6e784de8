/**
 * Argument checks of this package, on top of core's: a Secret, a factory, optional bytes, and the
 * view a Secret's `withBytes` hands over (third-party backends included).
 * @module
 */
import { ErrorCode, SecureMemoryRangeError, SecureMemoryTypeError, type Secret, type SecretFactory } from '@secure-memory/core';
import { assertBytes, describeType } from '@secure-memory/core/backend';

/**
 * Asserts that `value` is a Secret (of any backend): an object with `withBytes` and a numeric `size`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE`.
 */
export function assertSecret(value: unknown, label: string): asserts value is Secret {
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Secret).withBytes === 'function' &&
    typeof (value as Secret).size === 'number'
  ) {
    return;
  }
  throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${label}" argument must be a Secret. Received ${describeType(value)}`);
}

/**
 * Asserts that `value` is a SecretFactory: an object with `new`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE`.
 */
export function assertFactory(value: unknown, label: string): asserts value is SecretFactory {
  if (typeof value === 'object' && value !== null && typeof (value as SecretFactory).new === 'function') return;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "${label}" argument must be a SecretFactory. Received ${describeType(value)}`,
  );
}

/**
 * Asserts that `value` is undefined or bytes (a Uint8Array, not detached).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE`, or `ERR_INVALID_ARG_VALUE` when detached.
 */
export function assertOptionalBytes(value: unknown, label: string): asserts value is Uint8Array | undefined {
  if (value !== undefined) assertBytes(value, label);
}

/**
 * Asserts that a Secret's `withBytes` handed over a view of exactly `size` bytes. A backend that
 * hands anything else is broken; the key is not used.
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE`.
 */
export function assertView(view: unknown, size: number, label: string): asserts view is Uint8Array {
  if (view instanceof Uint8Array && view.byteLength === size) return;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_VALUE,
    `The "${label}" secret's withBytes handed ${describeType(view)} instead of a view of its ${size} bytes`,
  );
}

/**
 * Asserts that a secret's size is one of `sizes`.
 * @throws {RangeError} `ERR_INVALID_SIZE`.
 */
export function assertSecretSize(secret: Secret, label: string, sizes: readonly number[]): void {
  if (sizes.includes(secret.size)) return;
  throw new SecureMemoryRangeError(
    ErrorCode.INVALID_SIZE,
    `The "${label}" secret must be ${sizes.join(' or ')} bytes. Received ${String(secret.size)} bytes`,
  );
}

/**
 * Asserts that an input length is at most `max` bytes.
 * @throws {RangeError} `ERR_INVALID_SIZE`.
 */
export function assertMaxLength(length: number, label: string, max: number): void {
  if (length <= max) return;
  throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, `The "${label}" argument must be at most ${max} bytes. Received ${length} bytes`);
}
