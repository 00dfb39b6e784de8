/**
 * Reading a Secret's bytes for native code. A Secret that fits a pool slot is read through its
 * `reader()` into a slot of this package's locked scratch memory (locked, left out of core dumps,
 * wiped on fork, wiped when released): the Secret then hands no view of its memory to JavaScript,
 * so closing it wipes and frees its memory at once. A backend that handed a view out must instead
 * keep the addresses reserved until the garbage collector has collected the view (core's
 * retirement), which costs system calls and a finalizer per secret: for a short-lived data key,
 * about as much as the rest of an envelope record. Larger Secrets, and Secrets without `reader()`,
 * are read in place through `withBytes`.
 * @module
 */
import { ErrorCode, type Secret, SecureMemoryTypeError } from '@secure-memory/core';
import { assertView } from './assert.js';
import { addon, isFailure, nativeError } from './native.js';

/**
 * Runs `use` on the bytes of `secret` (`label` names it in errors): a copy in locked scratch memory
 * (wiped and released afterwards), or the Secret's own view.
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` when the Secret's `reader()` gives other than its `size`
 * bytes, or its `withBytes` hands anything but a view of them.
 * @throws {SecureMemoryError} the Secret's own errors (`ERR_SECRET_CLOSED`); `ERR_MEMLOCK_LIMIT`, `ERR_ALLOCATION_FAILED` for scratch memory.
 */
export function useSecretBytes<R>(secret: Secret, label: string, use: (bytes: Uint8Array) => R): R {
  const size = secret.size;
  const native = addon();
  if (size > native.SLOT_BYTES || size < 1 || typeof (secret as Partial<Secret>).reader !== 'function') {
    return secret.withBytes((view) => {
      assertView(view, size, label);
      return use(view);
    });
  }
  const reader = secret.reader();
  const scratch = native.scratchNew(size);
  if (isFailure(scratch)) throw nativeError(scratch, native.POOL_CHUNK_BYTES);
  try {
    const view = new Uint8Array(scratch.buffer, 0, size);
    let filled = 0;
    while (filled < size) {
      const n: unknown = reader.read(filled === 0 ? view : view.subarray(filled));
      if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > size - filled) break;
      filled += n;
    }
    if (filled !== size) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `The "${label}" secret's reader() gave ${filled} of its ${size} bytes`);
    }
    return use(view);
  } finally {
    native.scratchFree(scratch.buffer, scratch.handle); // detaches, wipes, releases
  }
}
