/**
 * The assertions the contract suite and the bad-input table share: an error by its stable `code`
 * (and class), never by its message, and a secret's bytes copied out to compare.
 * @module
 */
import assert from 'node:assert/strict';
import type { Secret } from '@secure-memory/core';

/** The class an expected error must be, by its `name` in the prototype chain. */
export type ErrorKind = 'TypeError' | 'RangeError' | 'Error';

/** Copies a secret's bytes out (test code only: this puts them in the heap). */
export function bytesOf(secret: Secret): Buffer {
  return secret.withBytes((b) => Buffer.from(b));
}

/** Asserts that `fn` throws (or rejects with) an error carrying `code`. */
export async function expectCode(fn: () => unknown, code: string, kind?: ErrorKind): Promise<void> {
  let outcome: unknown;
  try {
    outcome = fn();
  } catch (error) {
    checkError(error, code, kind);
    return;
  }
  if (outcome instanceof Promise) {
    try {
      await outcome;
    } catch (error) {
      checkError(error, code, kind);
      return;
    }
  }
  assert.fail(`expected an error with code ${code}, but the call succeeded`);
}

function checkError(error: unknown, code: string, kind?: ErrorKind): void {
  assert.ok(error instanceof Error, `expected an Error with code ${code}, got ${String(error)}`);
  assert.equal((error as { code?: unknown }).code, code, `wrong code (message: ${error.message})`);
  if (kind === 'TypeError') assert.ok(error instanceof TypeError, `${code} must be a TypeError`);
  if (kind === 'RangeError') assert.ok(error instanceof RangeError, `${code} must be a RangeError`);
}
