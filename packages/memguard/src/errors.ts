/**
 * Turns a failed system call into the library's error, with the facts a caller can act on.
 * @module
 */
import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import {
  ErrorCode,
  type ErrorCodeValue,
  SecureMemoryError,
  SecureMemoryRangeError,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  mapLimitError,
  memlockLimitError,
  systemError as coreSystemError,
  describeType,
  secretClosed,
} from '@secure-memory/core/backend';

/** Node's code for a number outside the range an argument accepts (a `RangeError`). */
const OUT_OF_RANGE = ErrorCode.OUT_OF_RANGE;

/**
 * Asserts that `value` is a whole number from `min` to `max` (as Node checks an integer argument).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when it is not a number.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` when it is fractional, not finite, or outside the range.
 */
export function assertInRange(value: unknown, label: string, min: number, max: number): asserts value is number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return;
  if (typeof value !== 'number') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${label}" argument must be a number. Received ${describeType(value)}`);
  }
  throw new SecureMemoryRangeError(
    OUT_OF_RANGE,
    `The value of "${label}" is out of range. It must be a whole number from ${min} to ${max}. Received ${String(value)}`,
  );
}

/** The backend's short name, as errors and secrets show it. */
export const BACKEND = 'memguard';

const { ENOMEM, EPERM } = constants.errno;

/** The error of a failed call: `code` with errno and syscall, or `ERR_MAP_LIMIT` at the mapping limit. */
export function systemError(code: ErrorCodeValue, syscall: string, errno: number, requested?: number): SecureMemoryError {
  return coreSystemError(BACKEND, code, syscall, errno, requested);
}

/** The error of a refused mlock of `length` bytes: `ERR_MEMLOCK_LIMIT` for EPERM/ENOMEM, unless at the mapping limit. */
export function lockError(errno: number, length: number): SecureMemoryError {
  const atMapLimit = mapLimitError(BACKEND, 'mlock', errno);
  if (atMapLimit !== undefined) return atMapLimit;
  if (errno === ENOMEM || errno === EPERM) return memlockLimitError(length, { backend: BACKEND, errno, syscall: 'mlock' });
  return systemError(ErrorCode.ALLOCATION_FAILED, 'mlock', errno, length);
}

/** The error for any use of a destroyed buffer or a purged secret. */
export function destroyed(): SecureMemoryError {
  return secretClosed(BACKEND);
}

/** The error for a write to a frozen (read-only) buffer, which would otherwise kill the process. */
export function frozen(what: string): SecureMemoryError {
  return new SecureMemoryError(
    ErrorCode.PROTECTION_FAILED,
    `${what} is read-only (frozen, or a view during a read-only access): melt() it first`,
    { backend: BACKEND },
  );
}

/** The error of a canary found damaged on destroy (the memory is wiped and freed all the same). */
export function integrityError(count = 1): SecureMemoryError {
  return new SecureMemoryError(
    ErrorCode.INTEGRITY,
    count === 1
      ? 'The canary before the data was overwritten: a buffer underflow wrote into guarded memory'
      : `${count} canaries were overwritten: buffer underflows wrote into guarded memory`,
    { backend: BACKEND },
  );
}

/** A failed read(2), shaped like the error `fs.readSync` throws (`code` 'EBADF', `errno` -9, `syscall` 'read'). */
export function readError(errno: number): NodeJS.ErrnoException {
  let name: string;
  try {
    name = getSystemErrorName(-errno);
  } catch {
    name = 'EIO';
  }
  const error: NodeJS.ErrnoException = new Error(`${name}: read failed (errno ${errno})`);
  error.code = name;
  error.errno = -errno;
  error.syscall = 'read';
  return error;
}

/**
 * Runs `prepare` on something just made (a buffer, a region); when it throws, destroys it (its
 * memory is wiped and released) and rethrows the first error.
 */
export function prepared<T extends { destroy(): unknown }>(made: T, prepare: (made: T) => void): T {
  try {
    prepare(made);
  } catch (error) {
    try {
      made.destroy();
    } catch {
      // the first error is the one to report; a region that could not be released stays listed for purge
    }
    throw error;
  }
  return made;
}
