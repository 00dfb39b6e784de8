/**
 * Making a Secret of any factory from bytes that only native code writes: in place where the
 * factory offers it, else through locked scratch memory that is wiped.
 * @module
 */
import type { Secret, SecretFactory } from '@secure-memory/core';
import { addon, isFailure, mapBudget, nativeError } from './native.js';

/**
 * The optional in-place hook of a factory: `factory[FILL_IN_PLACE](size, fill)` allocates a
 * secret of `size` bytes, calls `fill` with a writable view of exactly its memory, protects it and
 * returns it; when `fill` throws it wipes and releases the memory and rethrows.
 */
export const FILL_IN_PLACE: unique symbol = Symbol.for('secure-memory.fill') as never;

type InPlace = (size: number, fill: (writable: Uint8Array) => void) => Secret;

/**
 * A new secret of `factory` whose `size` bytes `write` puts into the writable view it is given.
 * `write` must throw (after zeroing what it wrote) to refuse; nothing is kept then.
 */
export function fillSecret(factory: SecretFactory, size: number, write: (writable: Uint8Array) => void): Secret {
  const inPlace = (factory as { [FILL_IN_PLACE]?: InPlace })[FILL_IN_PLACE];
  if (typeof inPlace === 'function') return inPlace.call(factory, size, write);
  const native = addon();
  const ownMapping = size > native.SLOT_BYTES;
  if (ownMapping) mapBudget.assertHeadroom();
  const scratch = native.scratchNew(size);
  if (isFailure(scratch)) throw nativeError(scratch, ownMapping ? size : native.POOL_CHUNK_BYTES);
  if (ownMapping) mapBudget.added();
  try {
    const view = new Uint8Array(scratch.buffer, 0, size);
    write(view);
    return factory.new(view); // copies into the secret's memory and zero-fills the scratch view
  } finally {
    native.scratchFree(scratch.buffer, scratch.handle); // detaches, wipes, releases
    if (ownMapping) mapBudget.removed();
  }
}
