/**
 * Assertions at the public edge. The happy path is checked first; a message is built only when
 * throwing, and it names the argument and the type it received, never its value.
 * @module
 */
import { ErrorCode, SecureMemoryRangeError, SecureMemoryTypeError } from './errors.js';

/** The largest secret any backend accepts: 1 GiB. A backend may set a lower maximum. */
export const MAX_SECRET_SIZE = 2 ** 30;

/** Describes the type of a value without revealing it. */
export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return 'function';
  if (typeof value !== 'object') return `type ${typeof value}`;
  let name: unknown;
  try {
    name = (value as { constructor?: { name?: unknown } }).constructor?.name;
  } catch {
    return 'an object'; // a revoked proxy, or a getter that throws
  }
  return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'an object';
}

/**
 * Asserts that `value` is a whole number of bytes from 1 to `max`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when it is not a number.
 * @throws {RangeError} `ERR_INVALID_SIZE` when it is NaN, infinite, fractional, below 1 or above `max`.
 */
export function assertSize(value: unknown, label: string, max: number = MAX_SECRET_SIZE): asserts value is number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= max) return;
  if (typeof value !== 'number') {
    throw new SecureMemoryTypeError(
      ErrorCode.INVALID_ARG_TYPE,
      `The "${label}" argument must be a number. Received ${describeType(value)}`,
    );
  }
  throw new SecureMemoryRangeError(
    ErrorCode.INVALID_SIZE,
    `The "${label}" argument must be a whole number of bytes from 1 to ${max}. Received ${String(value)}`,
  );
}

/**
 * Asserts that `value` is a file descriptor: a whole number from 0.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when it is not a number.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` when it is negative, fractional, NaN or not a safe integer (as Node's `fs` does).
 */
export function assertFd(value: unknown, label: string): asserts value is number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return;
  if (typeof value !== 'number') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${label}" argument must be a number. Received ${describeType(value)}`);
  }
  throw new SecureMemoryRangeError(ErrorCode.OUT_OF_RANGE, `The "${label}" argument must be a file descriptor (a whole number from 0). Received ${String(value)}`);
}

/**
 * Asserts that `value` is a function.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE`.
 */
export function assertFunction(value: unknown, label: string): asserts value is (...args: never[]) => unknown {
  if (typeof value === 'function') return;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "${label}" argument must be a function. Received ${describeType(value)}`,
  );
}

/**
 * Asserts that `value` is one of `choices`.
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE`, naming the allowed choices.
 */
export function assertOneOf<T extends string>(value: unknown, label: string, choices: readonly T[]): asserts value is T {
  if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_VALUE,
    `The "${label}" option must be one of ${choices.map((c) => `'${c}'`).join(', ')}. Received ${describeType(value)}`,
  );
}

/**
 * Asserts that `value` is undefined or a plain options object.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE`.
 */
export function assertOptions(value: unknown, label: string): asserts value is Record<string, unknown> | undefined {
  if (value === undefined || (typeof value === 'object' && value !== null && !Array.isArray(value))) return;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "${label}" argument must be an object. Received ${describeType(value)}`,
  );
}

/** `lock` option of a backend that locks its memory: fail when it cannot be locked (`'require'`), or go on unlocked (`'best-effort'`). */
export type LockOption = 'require' | 'best-effort';
/** The values of {@link LockOption}, `'require'` (the default) first. */
export const LOCK_CHOICES: readonly LockOption[] = ['require', 'best-effort'];

/** For {@link readChoiceOptions}: each option's allowed values, and the value it takes when absent. */
export type ChoiceSpec = Readonly<Record<string, { readonly choices: readonly string[]; readonly fallback: string }>>;

/**
 * Reads a backend's options object whose options each take one of a few string values: asserts
 * that `options` is undefined or a plain object, then each option of `spec` in order (absent: its
 * `fallback`). Keys `spec` does not name are ignored.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object, `ERR_INVALID_ARG_VALUE`
 * naming the first option outside its choices.
 * @example
 * const { lock } = readChoiceOptions(options, { lock: { choices: LOCK_CHOICES, fallback: 'require' } });
 */
export function readChoiceOptions<const S extends ChoiceSpec>(options: unknown, spec: S): { -readonly [K in keyof S]: S[K]['choices'][number] } {
  assertOptions(options, 'options');
  const read: Record<string, string> = {};
  for (const [key, { choices, fallback }] of Object.entries(spec)) {
    const value: unknown = options?.[key] === undefined ? fallback : options[key];
    assertOneOf(value, key, choices);
    read[key] = value;
  }
  return read as { -readonly [K in keyof S]: S[K]['choices'][number] };
}

/** The error for a method called on something that is not one of ours. */
export function invalidThis(className: string): TypeError {
  return new SecureMemoryTypeError(ErrorCode.INVALID_THIS, `Value of "this" must be a ${className}`);
}
