/**
 * Access reference counting and the close-during-access rules, written once for every backend.
 * A backend supplies a {@link SecretRegion} (region.ts); {@link ManagedSecret} decides when to call
 * it, and lifetime.ts when its memory is released.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { assertFunction, describeType, invalidThis } from './assert.js';
import { assertBytes, byteLengthOf, copyBytes, handOutView, isEmptied, isProtectedView, isUint8Array, markProtectedView, wipeBytes } from './bytes.js';
import { ErrorCode, SecureMemoryError, SecureMemoryTypeError, secretClosed } from './errors.js';
import { type Lifetime, backendOf, countHandedView, endLifetime, pinLifetime, startLifetime } from './lifetime.js';
import { Redacted } from './redacted.js';
import type { SecretRegion } from './region.js';
import { REGION_PROBE, type RegionLocation, type Secret, type SecretReader, type SyncResult } from './types.js';

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function isAsyncFunction(fn: unknown): boolean {
  const tag = Object.prototype.toString.call(fn);
  return tag === '[object AsyncFunction]' || tag === '[object AsyncGeneratorFunction]';
}

function asyncActionError(): SecureMemoryError {
  return new SecureMemoryError(
    ErrorCode.ASYNC_ACTION,
    'withBytes takes a synchronous action; use withBytesAsync for an action that returns a promise',
  );
}

/** Compares two byte arrays in constant time for equal lengths; different lengths are unequal. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (byteLengthOf(a) !== byteLengthOf(b)) return false;
  return timingSafeEqual(a, b);
}

/**
 * Compares `ours` (secret memory) with a caller's view in constant time. The caller's bytes are
 * first copied into an off-heap scratch buffer (wiped after), because a native call on a small
 * on-heap view reads its `.buffer` and abandons a copy of it in the V8 heap.
 */
function equalsCallerBytes(ours: Uint8Array, theirs: Uint8Array): boolean {
  const size = byteLengthOf(theirs);
  if (size !== byteLengthOf(ours)) return false;
  const scratch = new Uint8Array(new ArrayBuffer(size)); // an explicit ArrayBuffer is never on the heap
  try {
    copyBytes(scratch, theirs);
    return timingSafeEqual(ours, scratch);
  } finally {
    wipeBytes(scratch);
  }
}

function isSecretLike(value: unknown): value is Secret {
  try {
    return (
      typeof value === 'object' &&
      value !== null &&
      typeof (value as Secret).withBytes === 'function' &&
      typeof (value as Secret).size === 'number'
    );
  } catch {
    return false; // a revoked proxy, or a getter that throws
  }
}

function readOnlyTarget(): SecureMemoryTypeError {
  return new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_VALUE,
    'The "target" argument is protected memory (a view of a secret), which cannot be written: read into a buffer of your own',
  );
}


/**
 * A {@link Secret} over a backend's {@link SecretRegion}. Nested and concurrent accesses share one
 * opening: the first opens the region, the last closes it, also when an action throws or rejects.
 * `close()` during an access refuses new access at once and frees when the last access ends.
 */
export class ManagedSecret extends Redacted implements Secret {
  readonly #life: Lifetime;
  #refs = 0;
  /** The region's own view while an access is open. */
  #view: Uint8Array | undefined;
  /** The view handed to actions (over an ArrayBuffer of its own when the region can make one). */
  #handed: Uint8Array | undefined;
  #closed = false;

  /**
   * @param backend the backend's short name, shown in the redacted form
   * @param region the idle region holding `size` bytes
   * @param onFree called once after the region is freed or retired (for the factory's counters)
   */
  constructor(backend: string, region: SecretRegion, size: number, onFree: () => void = () => {}) {
    super();
    this.#life = startLifetime(this, backend, region, size, onFree);
  }

  static #check(self: unknown): ManagedSecret {
    if (typeof self === 'object' && self !== null && #life in self) return self as ManagedSecret;
    throw invalidThis('Secret');
  }

  get size(): number {
    return ManagedSecret.#check(this).#life.size;
  }

  get closed(): boolean {
    return ManagedSecret.#check(this).#closed;
  }

  get #backend(): string {
    return backendOf(this.#life);
  }

  get #size(): number {
    return this.#life.size;
  }

  #open(): Uint8Array {
    const region = this.#life.region;
    if (this.#closed || region === undefined) throw secretClosed(this.#backend);
    if (this.#refs === 0) this.#view = region.protectRead();
    this.#refs += 1;
    return this.#view as Uint8Array;
  }

  /**
   * The view for a caller's action: with `exposeView`, made once (again after a detach) over a
   * buffer of its own; else the region's view of this access. Registered as protected memory.
   */
  #handOut(view: Uint8Array): Uint8Array {
    if (this.#handed !== undefined) return this.#handed;
    const region = this.#life.region as SecretRegion;
    if (region.exposeView === undefined) {
      markProtectedView(view);
      return view;
    }
    const { view: handed, buffer } = handOutView(region.exposeView(), this);
    countHandedView(this.#life, buffer);
    this.#handed = handed;
    return handed;
  }

  /** After a caller's access: a handed view that lost its bytes was detached (moved away); its memory is never released. */
  #checkHanded(): void {
    const handed = this.#handed;
    if (handed === undefined || !isEmptied(handed)) return;
    pinLifetime(this.#life);
    this.#handed = undefined;
  }

  #end(): void {
    this.#refs -= 1;
    if (this.#refs !== 0) return;
    const view = this.#view as Uint8Array;
    this.#view = undefined;
    try {
      (this.#life.region as SecretRegion).protectIdle(view);
    } finally {
      if (this.#closed) this.#free();
    }
  }

  /** Ends an access after the action failed: an error of ending it wins, with the action's error as its `cause`. */
  #endAfter(actionError: unknown): void {
    try {
      this.#end();
    } catch (endError) {
      if (endError instanceof Error && endError.cause === undefined) endError.cause = actionError;
      throw endError;
    }
  }

  #free(): void {
    this.#checkHanded();
    this.#handed = undefined;
    endLifetime(this, this.#life);
  }

  /** Runs a caller's action on the handed view, ending the access however it ends. */
  #run<R>(action: (bytes: Uint8Array) => R): R {
    const view = this.#open();
    let result: R;
    try {
      result = action(this.#handOut(view));
    } catch (error) {
      this.#checkHanded();
      this.#endAfter(error);
      throw error;
    }
    this.#checkHanded();
    if (result instanceof Promise) {
      // The action handed the view to asynchronous code, which may still touch it: keep the access
      // open until that settles (as withBytesAsync does), so that the touch reads instead of faulting.
      const settle = (): void => {
        this.#checkHanded();
        this.#end();
      };
      result.then(settle, settle);
      throw asyncActionError();
    }
    if (isThenable(result)) {
      // Another thenable: its `then` is not called (it is foreign code, and may never call back).
      this.#end();
      throw asyncActionError();
    }
    this.#end();
    return result;
  }

  /** An access of this library's own (equals, reader): the region's view, which never leaves this module. */
  #internal<R>(action: (bytes: Uint8Array) => R): R {
    const view = this.#open();
    let result: R;
    try {
      result = action(view);
    } catch (error) {
      this.#endAfter(error);
      throw error;
    }
    this.#end();
    return result;
  }

  /**
   * Runs `action` with a view of the bytes. The view is valid only during the call; keeping it is
   * an error the backend may punish (a fault). An action that returns a promise (a synchronous
   * function handing the view to asynchronous code) gets `ERR_ASYNC_ACTION`, and the bytes stay
   * readable until that promise settles, so that the asynchronous code reads them instead of
   * faulting (another thenable ends the access at once: its `then` is never called).
   * The view and its buffer keep the secret alive while they are reachable; its buffer refuses
   * `transfer()`.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after close; `ERR_ASYNC_ACTION` for an async action or a thenable result.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `action` is not a function.
   * @example
   * ```ts
   * const digest = secret.withBytes((key) => createHmac('sha256', key).update(data).digest());
   * ```
   */
  withBytes<R>(action: (bytes: Uint8Array) => SyncResult<R>): R {
    const self = ManagedSecret.#check(this);
    assertFunction(action, 'action');
    if (isAsyncFunction(action)) throw asyncActionError();
    return self.#run(action);
  }

  /**
   * Runs `action`; the bytes stay readable until the promise it returns settles. Every `await`
   * inside the action keeps the region open for that time: keep it short.
   * @throws {SecureMemoryError} (rejects) `ERR_SECRET_CLOSED` after close.
   * @throws {TypeError} (rejects) `ERR_INVALID_ARG_TYPE` when `action` is not a function.
   */
  async withBytesAsync<R>(action: (bytes: Uint8Array) => R | Promise<R>): Promise<R> {
    const self = ManagedSecret.#check(this);
    assertFunction(action, 'action');
    const view = self.#open();
    let result: R;
    try {
      result = await action(self.#handOut(view));
    } catch (error) {
      self.#checkHanded();
      self.#endAfter(error);
      throw error;
    }
    self.#checkHanded();
    self.#end();
    return result;
  }

  /**
   * A reader that copies the bytes, in order, into buffers the caller owns (and must wipe).
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after close, here or at any later `read`.
   * @throws {TypeError} (from `read`) `ERR_INVALID_ARG_TYPE` when the target is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when it is detached or is a view of a secret (read-only memory).
   */
  reader(): SecretReader {
    const self = ManagedSecret.#check(this);
    if (self.#closed) throw secretClosed(self.#backend);
    let position = 0;
    return {
      read(target: Uint8Array): number {
        assertBytes(target, 'target');
        if (isProtectedView(target)) throw readOnlyTarget();
        if (self.#closed) throw secretClosed(self.#backend);
        const count = Math.min(byteLengthOf(target), self.#size - position);
        if (count <= 0) return 0;
        self.#internal((bytes) => copyBytes(target, bytes.subarray(position, position + count)));
        position += count;
        return count;
      },
    };
  }

  /**
   * Compares with bytes or another secret in constant time; different lengths are unequal (the
   * length is not treated as secret).
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when either secret is closed.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `other` is neither a Uint8Array nor a Secret.
   */
  equals(other: Uint8Array | Secret): boolean {
    const self = ManagedSecret.#check(this);
    if (self.#closed) throw secretClosed(self.#backend);
    if (isUint8Array(other)) {
      assertBytes(other, 'other');
      return self.#internal((ours) => equalsCallerBytes(ours, other));
    }
    if (isSecretLike(other)) {
      return other.withBytes((theirs) => self.#internal((ours) => constantTimeEqual(ours, theirs)));
    }
    throw new SecureMemoryTypeError(
      ErrorCode.INVALID_ARG_TYPE,
      `The "other" argument must be a Uint8Array or a Secret. Received ${describeType(other)}`,
    );
  }

  /**
   * Wipes and frees the memory. Idempotent. During an access it refuses new access at once and
   * frees when the last access ends.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when the backend found its canary damaged (the memory is freed all the same).
   */
  close(): void {
    const self = ManagedSecret.#check(this);
    if (self.#closed) return;
    self.#closed = true;
    if (self.#refs === 0) self.#free();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** The region's location for native probes, or `undefined` when the backend does not say. */
  [REGION_PROBE](): RegionLocation | undefined {
    const self = ManagedSecret.#check(this);
    const region = self.#life.region;
    if (self.#closed || region === undefined) throw secretClosed(self.#backend);
    return region.location?.();
  }

  /** The redacted form, such as `Secret(memguard, 32 bytes)`. */
  override toString(): string {
    const self = ManagedSecret.#check(this);
    return `Secret(${self.#backend}, ${self.#closed ? 'closed' : `${self.#size} bytes`})`;
  }

  get [Symbol.toStringTag](): string {
    return 'Secret';
  }
}
