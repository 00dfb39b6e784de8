/**
 * Errors of secure-memory. Every error carries a stable `code`; match on it, never on message text.
 * Messages never contain secret bytes nor the values of arguments (a wrong argument may itself be
 * a password), only their types.
 * @module
 */

/** The stable codes of {@link SecureMemoryError} and of the argument errors. */
export const ErrorCode = {
  /** An argument has the wrong type (a `TypeError`). */
  INVALID_ARG_TYPE: 'ERR_INVALID_ARG_TYPE',
  /** An argument has the right type but an unusable value, such as a detached buffer (a `TypeError`). */
  INVALID_ARG_VALUE: 'ERR_INVALID_ARG_VALUE',
  /** A method was called with a `this` that is not a secret or factory of this library (a `TypeError`). */
  INVALID_THIS: 'ERR_INVALID_THIS',
  /** A number is outside the range the argument allows, such as a negative file descriptor (a `RangeError`, as Node's own). */
  OUT_OF_RANGE: 'ERR_OUT_OF_RANGE',
  /** A size is not a whole number of bytes from 1 to the backend's maximum (a `RangeError`). */
  INVALID_SIZE: 'ERR_INVALID_SIZE',
  /** The secret was closed: no further access is possible. */
  SECRET_CLOSED: 'ERR_SECRET_CLOSED',
  /** An asynchronous action was handed to the synchronous `withBytes`. */
  ASYNC_ACTION: 'ERR_ASYNC_ACTION',
  /** Locking the memory would exceed RLIMIT_MEMLOCK (`requested` and `limit` in bytes). */
  MEMLOCK_LIMIT: 'ERR_MEMLOCK_LIMIT',
  /** Another mapping would exceed the kernel's mapping limit (`vm.max_map_count`). */
  MAP_LIMIT: 'ERR_MAP_LIMIT',
  /** The system refused memory (`errno`, `syscall`). */
  ALLOCATION_FAILED: 'ERR_ALLOCATION_FAILED',
  /** Changing the protection of a region failed (`errno`, `syscall`). */
  PROTECTION_FAILED: 'ERR_PROTECTION_FAILED',
  /** A canary or an authentication tag did not match: the memory was tampered with. */
  INTEGRITY: 'ERR_INTEGRITY',
  /** The backend cannot be loaded or does not work here. */
  BACKEND_UNAVAILABLE: 'ERR_BACKEND_UNAVAILABLE',
  /** The platform lacks what the backend or option needs. */
  UNSUPPORTED_PLATFORM: 'ERR_UNSUPPORTED_PLATFORM',
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The optional facts a {@link SecureMemoryError} carries. */
export interface SecureMemoryErrorDetails {
  /** The system error number, where a system call failed. */
  errno?: number;
  /** The system call that failed. */
  syscall?: string;
  /** Bytes (or mappings, for `ERR_MAP_LIMIT`) that were asked for. */
  requested?: number;
  /** The limit in force, in the same unit as `requested`. */
  limit?: number;
  /** The backend that raised it. */
  backend?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * The error of every failure that is not a bad argument.
 * @example
 * ```ts
 * try { factory.createRandom(1 << 30); }
 * catch (err) { if (isSecureMemoryError(err, 'ERR_MEMLOCK_LIMIT')) console.log(err.requested, err.limit); }
 * ```
 */
export class SecureMemoryError extends Error {
  /** The stable code. */
  readonly code: ErrorCodeValue;
  readonly errno?: number;
  readonly syscall?: string;
  readonly requested?: number;
  readonly limit?: number;
  readonly backend?: string;

  constructor(code: ErrorCodeValue, message: string, details: SecureMemoryErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'SecureMemoryError';
    this.code = code;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.syscall !== undefined) this.syscall = details.syscall;
    if (details.requested !== undefined) this.requested = details.requested;
    if (details.limit !== undefined) this.limit = details.limit;
    if (details.backend !== undefined) this.backend = details.backend;
  }
}

/** A `TypeError` with a Node-style `code`. */
export class SecureMemoryTypeError extends TypeError {
  readonly code: ErrorCodeValue;
  constructor(code: ErrorCodeValue, message: string) {
    super(message);
    this.name = 'TypeError';
    this.code = code;
  }
}

/** A `RangeError` with a Node-style `code`. */
export class SecureMemoryRangeError extends RangeError {
  readonly code: ErrorCodeValue;
  constructor(code: ErrorCodeValue, message: string) {
    super(message);
    this.name = 'RangeError';
    this.code = code;
  }
}

/**
 * True when `err` is an error of this library (any of the three classes), and, when `code` is
 * given, carries that code.
 */
export function isSecureMemoryError(err: unknown, code?: ErrorCodeValue): err is SecureMemoryError {
  if (
    !(err instanceof SecureMemoryError || err instanceof SecureMemoryTypeError || err instanceof SecureMemoryRangeError)
  ) {
    return false;
  }
  return code === undefined || err.code === code;
}

/** The error for any use of a closed secret. */
export function secretClosed(backend?: string): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.SECRET_CLOSED, 'The secret is closed', backend === undefined ? {} : { backend });
}
