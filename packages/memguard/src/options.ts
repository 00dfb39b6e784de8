/**
 * The options bags of the LockedBuffer constructors and of the factory: their types and their
 * checks (core's `assertOptions` for the bag, one check for each boolean flag).
 * @module
 */
import { ErrorCode, SecureMemoryTypeError } from '@secure-memory/core';
import { assertOptions, describeType } from '@secure-memory/core/backend';

/** Options of the LockedBuffer constructors. */
export interface LockedBufferOptions {
  /**
   * `true`: when the buffer is garbage-collected without `destroy()`, emit a `SecureMemoryWarning`
   * (code `MEMGUARD_UNRELEASED`) with the stack where it was made. Costs a stack capture per buffer.
   * Default `false`: the memory is released silently.
   */
  debug?: boolean;
}

/** Options of the constructors that read from a file descriptor. */
export interface ReadOptions extends LockedBufferOptions {
  /**
   * `true`: an input that ends early gives a buffer of what was read (check `size`), as a reader
   * that may return less. Default `false`: an input that ends before `size` bytes (or before the
   * delimiter) is an error, as memguard's `io.ErrUnexpectedEOF`, and nothing is kept.
   */
  partial?: boolean;
}

/**
 * The boolean option `name` of a bag that was checked with `assertOptions`: `false` when absent.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when it is there and not a boolean.
 */
function booleanOption(options: Record<string, unknown> | undefined, name: string): boolean {
  const value = options?.[name];
  if (value === undefined) return false;
  if (typeof value === 'boolean') return value;
  throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${name}" option must be a boolean. Received ${describeType(value)}`);
}

/** The `debug` option of an options bag, the bag checked first. */
export function debugOption(options: unknown): boolean {
  assertOptions(options, 'options');
  return booleanOption(options, 'debug');
}

/** The `partial` option of an options bag (checked after {@link debugOption}). */
export function partialOption(options: ReadOptions | undefined): boolean {
  return booleanOption(options as Record<string, unknown> | undefined, 'partial');
}
