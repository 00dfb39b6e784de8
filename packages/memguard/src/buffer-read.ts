/**
 * Making LockedBuffers from an input: a file descriptor read with read(2) straight into locked
 * memory (a size, up to a delimiter, or to the end), or a {@link Stream}. Every reader ends the same
 * way (see {@link intake}): nothing read is kept when the input fails or ends early.
 * @module
 */
import { ErrorCode, SecureMemoryRangeError, SecureMemoryTypeError } from '@secure-memory/core';
import { MAX_SECRET_SIZE, assertFd, assertSize, describeType } from '@secure-memory/core/backend';
import { type LockedBuffer, bufferRegion, make, ownView } from './buffer.js';
import { assertInRange, prepared, readError } from './errors.js';
import { MIN_CANARY, pageSize } from './mapping.js';
import { addon } from './native.js';
import { type LockedBufferOptions, type ReadOptions, debugOption, partialOption } from './options.js';
import type { GuardedRegion } from './region.js';

/** The largest descriptor the addon takes (read(2) gets an int). */
const MAX_FD = 0x7fffffff;

/**
 * A file descriptor: core's check (type, whole number from 0), after the range the addon can pass
 * to read(2).
 */
function assertDescriptor(fd: unknown): asserts fd is number {
  if (typeof fd === 'number') assertInRange(fd, 'fd', 0, MAX_FD);
  assertFd(fd, 'fd');
}

function assertDelimiter(delim: unknown): asserts delim is number {
  assertInRange(delim, 'delim', 0, 255);
}

/** Reads from `fd` with read(2) straight into the region's data from `offset`; the bytes read (0 at the end). */
function readInto(fd: number, region: GuardedRegion, offset: number, length: number): number {
  const n = addon().read(fd, region.data + BigInt(offset), length);
  if (n < 0) throw readError(-n);
  return n;
}

/** A frozen buffer with the first `length` bytes of `source`, which is destroyed. */
function shrink(source: LockedBuffer, length: number, debug: boolean): LockedBuffer {
  try {
    return prepared(make(length, debug), (result) => {
      result.copy(ownView(source).subarray(0, length));
      result.freeze();
    });
  } finally {
    source.destroy();
  }
}

/** A buffer being filled from an input: how many bytes were read, into a buffer that may grow. */
class Intake {
  done = 0;
  buffer: LockedBuffer;
  /** The size of `buffer`. */
  capacity: number;
  readonly #debug: boolean;

  constructor(capacity: number, debug: boolean) {
    this.buffer = make(capacity, debug);
    this.capacity = capacity;
    this.#debug = debug;
  }

  /** Moves what was read into a new buffer of `capacity` bytes, and destroys the old one. */
  grow(capacity: number): void {
    const bigger = make(capacity, this.#debug);
    const old = this.buffer;
    this.buffer = bigger; // from here a failure releases the new one
    bigger.copy(ownView(old));
    this.capacity = capacity;
    old.destroy();
  }
}

/** What a reader says when its input gave nothing, and when it ended early (after `done` bytes). */
interface IntakeErrors {
  readonly empty: string;
  readonly short: (done: number) => string;
}

/**
 * Reads into a new buffer of `size` bytes with `read`, which returns whether the input was complete
 * (the whole size, or up to the delimiter). When `read` throws, the buffer (grown or not) is
 * destroyed. An input that gave nothing, or (unless `partial`) ended early, is `ERR_INVALID_SIZE`,
 * after the buffer is destroyed. Else returns a frozen buffer of what was read.
 */
function intake(size: number, debug: boolean, partial: boolean, errors: IntakeErrors, read: (into: Intake) => boolean): LockedBuffer {
  const into = new Intake(size, debug);
  let complete: boolean;
  try {
    complete = read(into);
  } catch (error) {
    into.buffer.destroy();
    throw error;
  }
  const { buffer, done, capacity } = into;
  if (done === 0 || (!complete && !partial)) {
    buffer.destroy();
    throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, done === 0 ? errors.empty : errors.short(done));
  }
  if (done < capacity) return shrink(buffer, done, debug);
  return prepared(buffer, (b) => b.freeze());
}

/** The messages of the descriptor readers: `ended` says where the input ended, after `done` bytes. */
function descriptorErrors(ended: (done: number) => string): IntakeErrors {
  return {
    empty: 'The descriptor gave no data: a buffer needs at least 1 byte',
    short: (done) => `The descriptor ended ${ended(done)}: the bytes read were wiped (pass { partial: true } to keep a shorter input)`,
  };
}

/**
 * Reads `size` bytes from the file descriptor `fd` with read(2) straight into locked memory (a key
 * file or stdin never passes through the JavaScript heap) and returns them in a frozen buffer. When
 * the descriptor ends first it throws `ERR_INVALID_SIZE` (memguard's NewBufferFromReader returns
 * io.ErrUnexpectedEOF) after wiping what was read; with `{ partial: true }` the buffer holds what
 * was read instead (check `size`). A non-blocking descriptor is waited on with poll(2). `fd` is not
 * closed.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad `fd`, `size` or `options` type.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` for a negative, fractional or too large `fd`;
 * `ERR_INVALID_SIZE` for a bad `size`, when the descriptor gave no data at all, or (unless
 * `partial`) when it ended before `size` bytes.
 * @throws {Error} a failed read(2) throws what `fs.readSync` would: `code` 'EBADF', 'EISDIR', ...
 * with `errno` and `syscall` 'read' (the locked memory is wiped and released first).
 * @throws {SecureMemoryError} as {@link newBuffer}.
 * @example
 * ```ts
 * const fd = openSync('/run/secrets/key', 'r');
 * using key = newBufferFromFd(fd, 32);
 * closeSync(fd);
 * ```
 */
export function newBufferFromFd(fd: number, size: number, options?: ReadOptions): LockedBuffer {
  const debug = debugOption(options);
  const partial = partialOption(options);
  assertDescriptor(fd);
  assertSize(size, 'size', MAX_SECRET_SIZE);
  const errors = descriptorErrors((done) => `after ${done} of ${size} bytes`);
  return intake(size, debug, partial, errors, (into) => {
    const region = bufferRegion(into.buffer);
    while (into.done < size) {
      const n = readInto(fd, region, into.done, size - into.done);
      if (n === 0) break;
      into.done += n;
    }
    return into.done === size;
  });
}

/**
 * Reads from `fd` one byte at a time, straight into locked memory, until the byte `delim` (not
 * kept) or the end, and returns a frozen buffer of what came before it, as memguard's
 * NewBufferFromReaderUntil: `newBufferFromFdUntil(0, 0x0a)` reads a line of stdin. It reads no byte
 * past the delimiter. The locked memory grows by whole pages as needed; every intermediate buffer
 * is wiped.
 * Unless `{ partial: true }`, an input that ends without the delimiter is an error
 * (`ERR_INVALID_SIZE`, what was read is wiped).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad `fd`, `delim` or `options` type.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` for a bad `fd` or a `delim` outside 0..255;
 * `ERR_INVALID_SIZE` when nothing came before the delimiter or the end, when more than 1 GiB did,
 * or (unless `partial`) when the input ended without the delimiter.
 * @throws {Error} a failed read(2), as {@link newBufferFromFd}.
 * @throws {SecureMemoryError} as {@link newBuffer}.
 */
export function newBufferFromFdUntil(fd: number, delim: number, options?: ReadOptions): LockedBuffer {
  const debug = debugOption(options);
  const partial = partialOption(options);
  assertDescriptor(fd);
  assertDelimiter(delim);
  const page = pageSize();
  const errors = descriptorErrors((done) => `before the delimiter, after ${done} bytes`);
  // The first buffer fills its pages exactly (one page minus the canary).
  return intake(page - MIN_CANARY, debug, partial, errors, (into) => {
    for (;;) {
      const capacity = into.capacity;
      if (into.done === capacity) {
        if (capacity + page > MAX_SECRET_SIZE) {
          throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The data before the delimiter is larger than 1 GiB');
        }
        into.grow(capacity + page);
      }
      if (readInto(fd, bufferRegion(into.buffer), into.done, 1) === 0) return false;
      const own = ownView(into.buffer);
      if (own[into.done] === delim) {
        own[into.done] = 0;
        return true;
      }
      into.done += 1;
    }
  });
}

/**
 * Reads `fd` to its end with read(2), straight into locked memory that grows (doubling) as needed,
 * and returns a frozen buffer of everything read (memguard's NewBufferFromEntireReader). Every
 * intermediate buffer is wiped; nothing passes through the heap. `fd` is not closed.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad `fd` or `options` type.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` for a bad `fd`; `ERR_INVALID_SIZE` when the input is empty
 * or larger than 1 GiB.
 * @throws {Error} a failed read(2), as {@link newBufferFromFd}.
 * @throws {SecureMemoryError} as {@link newBuffer}.
 */
export function newBufferFromFdToEnd(fd: number, options?: LockedBufferOptions): LockedBuffer {
  const debug = debugOption(options);
  assertDescriptor(fd);
  // Never short: the end is what it reads to.
  const errors = descriptorErrors(() => 'early');
  return intake(pageSize() - MIN_CANARY, debug, false, errors, (into) => {
    for (;;) {
      let capacity = into.capacity;
      if (into.done === capacity) {
        if (capacity >= MAX_SECRET_SIZE) {
          throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The input is larger than 1 GiB');
        }
        capacity = Math.min(MAX_SECRET_SIZE, capacity * 2 + MIN_CANARY);
        into.grow(capacity);
      }
      const n = readInto(fd, bufferRegion(into.buffer), into.done, capacity - into.done);
      if (n === 0) return true;
      into.done += n;
    }
  });
}

/**
 * Reads `size` bytes from a {@link Stream} straight into a new frozen buffer (memguard's
 * NewBufferFromReader with a Stream as the reader): each chunk is opened in locked memory and copied
 * into the buffer. A stream with fewer bytes is an error (`ERR_INVALID_SIZE`, what was read is wiped
 * and gone from the stream) unless `{ partial: true }`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `stream` is not a Stream, or for a bad `size`.
 * @throws {RangeError} `ERR_INVALID_SIZE` for a bad `size`, an empty stream, or (unless `partial`) a short one.
 * @throws {SecureMemoryError} `ERR_INTEGRITY` from the stream (a chunk sealed before a purge, or
 * tampered with); as {@link newBuffer}.
 */
export function newBufferFromStream(stream: { read(target: Uint8Array): number }, size: number, options?: ReadOptions): LockedBuffer {
  const debug = debugOption(options);
  const partial = partialOption(options);
  if (typeof stream !== 'object' || stream === null || typeof stream.read !== 'function') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "stream" argument must be a Stream. Received ${describeType(stream)}`);
  }
  assertSize(size, 'size', MAX_SECRET_SIZE);
  const errors: IntakeErrors = {
    empty: 'The stream is empty: a buffer needs at least 1 byte',
    short: (done) => `The stream ended after ${done} of ${size} bytes: the bytes read were wiped`,
  };
  return intake(size, debug, partial, errors, (into) => {
    const own = ownView(into.buffer);
    while (into.done < size) {
      const n = stream.read(own.subarray(into.done));
      if (n === 0) break;
      into.done += n;
    }
    return into.done === size;
  });
}
