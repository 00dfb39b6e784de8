/**
 * Reading a Secret's bytes for native code. A Secret that fits a pool slot is read through its
 * `reader()` into a slot of this package's locked scratch memory (locked, left out of core dumps,
 * wiped on fork, wiped right after use; core's own reader, which keeps no reference to its
 * target, gets a slot the thread keeps, any other reader a fresh one that is detached afterwards): the Secret then hands no view of its memory to JavaScript,
 * so closing it wipes and frees its memory at once. A backend that handed a view out must instead
 * keep the addresses reserved until the garbage collector has collected the view (core's
 * retirement), which costs system calls and a finalizer per secret: for a short-lived data key,
 * about as much as the rest of an envelope record. Larger Secrets, and Secrets without `reader()`,
 * are read in place through `withBytes`.
 * @module
 */
import { ErrorCode, type Secret, SecureMemoryTypeError, type SyncResult } from '@secure-memory/core';
import { ManagedSecret } from '@secure-memory/core/backend';
import { assertView } from './assert.js';
import { type Addon, type Handle, addon, isFailure, nativeError } from './native.js';

/**
 * This thread's reusable scratch slot, for core's own reader (which copies into the target and
 * keeps no reference to it): wiped after every use, never handed to other code. Module state is
 * per thread (each worker loads its own); the slot goes back to the pool when it is collected.
 */
let reusable: { buffer: ArrayBuffer; handle: Handle; busy: boolean } | undefined;

/** A reader that keeps no reference to its target: core's own, not overridden. */
function trustedReader(secret: Secret): boolean {
  return secret instanceof ManagedSecret && secret.reader === ManagedSecret.prototype.reader;
}

/** Scratch memory for `size` bytes: the reusable slot when it is free and may be used, else a fresh slot that is detached and released afterwards. */
function takeScratch(native: Addon, size: number, trusted: boolean): { view: Uint8Array; release(): void } {
  if (trusted) {
    if (reusable === undefined) {
      const made = native.scratchNew(native.SLOT_BYTES);
      if (isFailure(made)) throw nativeError(made, native.POOL_CHUNK_BYTES);
      reusable = { ...made, busy: false };
    }
    const slot = reusable;
    if (!slot.busy) {
      slot.busy = true;
      const view = new Uint8Array(slot.buffer, 0, size);
      return {
        view,
        release: () => {
          view.fill(0);
          slot.busy = false;
        },
      };
    }
  }
  const scratch = native.scratchNew(size);
  if (isFailure(scratch)) throw nativeError(scratch, native.POOL_CHUNK_BYTES);
  return { view: new Uint8Array(scratch.buffer, 0, size), release: () => native.scratchFree(scratch.buffer, scratch.handle) }; // detaches, wipes, releases
}

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
    // `use` is synchronous (every caller in this package is), whatever R is.
    return secret.withBytes((view) => {
      assertView(view, size, label);
      return use(view) as SyncResult<R>;
    });
  }
  const reader = secret.reader();
  const { view, release } = takeScratch(native, size, trustedReader(secret));
  try {
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
    release();
  }
}
