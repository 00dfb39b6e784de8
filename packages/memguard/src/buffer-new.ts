/**
 * Making LockedBuffers from a size, from bytes (which are wiped) or from the CSPRNG, and memguard's
 * byte helpers for the caller's own memory (`wipeBytes`, `scrambleBytes`).
 * @module
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { MAX_SECRET_SIZE, assertBytes, assertSize } from '@secure-memory/core/backend';
import { type LockedBuffer, make } from './buffer.js';
import { prepared } from './errors.js';
import { type LockedBufferOptions, debugOption } from './options.js';
import { assertReadable, assertWipeable, GuardedView, V8_ON_HEAP_MAX } from './views.js';

/**
 * A mutable buffer of `size` zero bytes.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number or `options` not an object.
 * @throws {RangeError} `ERR_INVALID_SIZE` unless `size` is a whole number from 1 to 1 GiB.
 * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT` (with `requested` and `limit`), `ERR_MAP_LIMIT`,
 * `ERR_ALLOCATION_FAILED` or `ERR_PROTECTION_FAILED`; nothing is left behind then.
 * @example
 * ```ts
 * using buf = newBuffer(32);
 * buf.move(keyBytes); // keyBytes is zeroed
 * buf.freeze();
 * ```
 */
export function newBuffer(size: number, options?: LockedBufferOptions): LockedBuffer {
  const debug = debugOption(options);
  assertSize(size, 'size', MAX_SECRET_SIZE);
  return make(size, debug);
}

/**
 * A frozen buffer holding a copy of `src`, which is then zero-filled (memguard's
 * NewBufferFromBytes).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `src` is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when detached.
 * @throws {RangeError} `ERR_INVALID_SIZE` when `src` is empty or larger than 1 GiB.
 * @throws {SecureMemoryError} as {@link newBuffer}, with `src` left as it was; `ERR_PROTECTION_FAILED`
 * when `src` is a read-only view (it could not be wiped).
 */
export function newBufferFromBytes(src: Uint8Array, options?: LockedBufferOptions): LockedBuffer {
  const debug = debugOption(options);
  assertBytes(src, 'src');
  assertReadable(src);
  assertSize(src.byteLength, 'src.byteLength', MAX_SECRET_SIZE);
  assertWipeable(src, 'src');
  const buffer = prepared(make(src.byteLength, debug), (b) => {
    b.copy(src);
    b.freeze();
  });
  src.fill(0); // only once the buffer is complete: a failure leaves `src` as it was
  return buffer;
}

/**
 * A frozen buffer of `size` bytes from the CSPRNG, generated straight into locked memory.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number.
 * @throws {RangeError} `ERR_INVALID_SIZE` unless `size` is a whole number from 1 to 1 GiB.
 * @throws {SecureMemoryError} as {@link newBuffer}.
 */
export function newBufferRandom(size: number, options?: LockedBufferOptions): LockedBuffer {
  const debug = debugOption(options);
  assertSize(size, 'size', MAX_SECRET_SIZE);
  return prepared(make(size, debug), (b) => {
    b.scramble();
    b.freeze();
  });
}

/**
 * Overwrites `buf` (your memory) with zeros, in place (memguard's WipeBytes). A `fill` the compiler
 * cannot drop: JavaScript can observe it. Never reads `buf.buffer`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `buf` is not a Uint8Array.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` for a read-only view of this package;
 * `ERR_SECRET_CLOSED` for a view of released memory.
 */
export function wipeBytes(buf: Uint8Array): void {
  assertBytes(buf, 'buf');
  assertReadable(buf);
  assertWipeable(buf, 'buf');
  buf.fill(0);
}

/**
 * Overwrites `buf` (your memory) with bytes from the CSPRNG (memguard's ScrambleBytes). A small
 * array (64 bytes or less) gets them through a copy that is wiped, so that its `.buffer` is never
 * read (which would leave its old contents in the V8 heap).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `buf` is not a Uint8Array.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` for a read-only view of this package;
 * `ERR_SECRET_CLOSED` for a view of released memory.
 */
export function scrambleBytes(buf: Uint8Array): void {
  assertBytes(buf, 'buf');
  assertReadable(buf);
  assertWipeable(buf, 'buf');
  if (buf.byteLength > V8_ON_HEAP_MAX || GuardedView.isOurs(buf)) {
    randomFillSync(buf);
    return;
  }
  const fresh = randomBytes(buf.byteLength);
  buf.set(fresh);
  fresh.fill(0);
}
