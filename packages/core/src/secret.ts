/**
 * Access reference counting and the close-during-access rules, written once for every backend.
 * A backend supplies a {@link SecretRegion}; {@link ManagedSecret} decides when to call it.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { assertFunction, describeType, invalidThis } from './assert.js';
import { assertBytes, byteLengthOf, copyBytes, isProtectedView, isUint8Array, wipeBytes } from './bytes.js';
import { ErrorCode, SecureMemoryError, SecureMemoryTypeError, secretClosed } from './errors.js';
import { Redacted } from './redacted.js';
import { REGION_PROBE, type RegionLocation, type Secret, type SecretReader } from './types.js';

/**
 * The operations a backend supplies for one secret's memory. The region is idle (protected) when
 * handed to {@link ManagedSecret}; core calls `protectRead` when the first access opens,
 * `protectIdle` when the last one ends, and `wipe` then `free` exactly once at close, never
 * during an access.
 */
export interface SecretRegion {
  /** Makes the bytes readable and returns a view of exactly the secret's size. */
  protectRead(): Uint8Array;
  /** Protects the bytes again; `view` is the one `protectRead` returned (revoke it if you can). */
  protectIdle(view: Uint8Array): void;
  /** Overwrites the bytes with zeros. */
  wipe(): void;
  /** Releases the memory. May throw `ERR_INTEGRITY` after releasing when a canary was damaged. */
  free(): void;
  /** Where the data is, for native probes; omit when it cannot be said honestly. */
  location?(): RegionLocation;
}

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
  #region: SecretRegion | undefined;
  readonly #backend: string;
  readonly #size: number;
  readonly #onFree: () => void;
  #refs = 0;
  #view: Uint8Array | undefined;
  #closed = false;

  /**
   * @param backend the backend's short name, shown in the redacted form
   * @param region the idle region holding `size` bytes
   * @param onFree called once after the region is freed (for the factory's counters)
   */
  constructor(backend: string, region: SecretRegion, size: number, onFree: () => void = () => {}) {
    super();
    this.#backend = backend;
    this.#region = region;
    this.#size = size;
    this.#onFree = onFree;
  }

  static #check(self: unknown): ManagedSecret {
    if (typeof self === 'object' && self !== null && #region in self) return self as ManagedSecret;
    throw invalidThis('Secret');
  }

  get size(): number {
    return ManagedSecret.#check(this).#size;
  }

  get closed(): boolean {
    return ManagedSecret.#check(this).#closed;
  }

  #open(): Uint8Array {
    if (this.#closed || this.#region === undefined) throw secretClosed(this.#backend);
    if (this.#refs === 0) this.#view = this.#region.protectRead();
    this.#refs += 1;
    return this.#view as Uint8Array;
  }

  #end(): void {
    this.#refs -= 1;
    if (this.#refs !== 0) return;
    const view = this.#view as Uint8Array;
    this.#view = undefined;
    try {
      (this.#region as SecretRegion).protectIdle(view);
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
    const region = this.#region;
    if (region === undefined) return;
    this.#region = undefined;
    try {
      region.wipe();
    } finally {
      try {
        region.free();
      } finally {
        this.#onFree();
      }
    }
  }

  /**
   * Runs `action` with a view of the bytes. The view is valid only during the call; keeping it is
   * an error the backend may punish (a fault or a revoked, empty view).
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after close; `ERR_ASYNC_ACTION` for an async action or a thenable result.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `action` is not a function.
   * @example
   * ```ts
   * const digest = secret.withBytes((key) => createHmac('sha256', key).update(data).digest());
   * ```
   */
  withBytes<R>(action: (bytes: Uint8Array) => R): R {
    const self = ManagedSecret.#check(this);
    assertFunction(action, 'action');
    if (isAsyncFunction(action)) throw asyncActionError();
    const view = self.#open();
    let result: R;
    try {
      result = action(view);
    } catch (error) {
      self.#endAfter(error);
      throw error;
    }
    self.#end();
    if (isThenable(result)) {
      if (result instanceof Promise) result.then(undefined, () => {});
      throw asyncActionError();
    }
    return result;
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
      result = await action(view);
    } catch (error) {
      self.#endAfter(error);
      throw error;
    }
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
        self.withBytes((bytes) => copyBytes(target, bytes.subarray(position, position + count)));
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
      return self.withBytes((ours) => equalsCallerBytes(ours, other));
    }
    if (isSecretLike(other)) {
      return other.withBytes((theirs) => self.withBytes((ours) => constantTimeEqual(ours, theirs)));
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
    if (self.#closed || self.#region === undefined) throw secretClosed(self.#backend);
    return self.#region.location?.();
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
