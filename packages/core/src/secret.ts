/**
 * Access reference counting and the close-during-access rules, written once for every backend.
 * A backend supplies a {@link SecretRegion}; {@link ManagedSecret} decides when to call it.
 * @module
 */
import { timingSafeEqual } from 'node:crypto';
import { isMainThread } from 'node:worker_threads';
import { assertFunction, describeType, invalidThis } from './assert.js';
import { assertBytes, byteLengthOf, copyBytes, handOutView, isEmptied, isProtectedView, isUint8Array, markProtectedView, wipeBytes } from './bytes.js';
import { ErrorCode, SecureMemoryError, SecureMemoryTypeError, secretClosed } from './errors.js';
import { Redacted } from './redacted.js';
import { REGION_PROBE, type RegionLocation, type Secret, type SecretReader, type SyncResult } from './types.js';

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
  /**
   * A fresh view of the bytes (readable only while an access is open) on an ArrayBuffer object of
   * its own, external, over the same memory: core hands it to actions instead of the region's own
   * view, so that nothing a caller does to it (a transfer) can empty the view of later accesses.
   * A region that has it must also have {@link SecretRegion.retire}.
   */
  exposeView?(): Uint8Array;
  /**
   * Called (after `wipe`) instead of `free` while a view handed to an action may still be
   * reachable: makes the memory inaccessible and gives back its lock and its pages, but keeps its
   * addresses reserved, so that no other secret can ever be placed where a kept view points.
   * Core calls `free` once every such view is garbage-collected, or never when one of them was
   * detached (its memory moved to an ArrayBuffer core cannot see). May throw `ERR_INTEGRITY`
   * after doing its work, as `free` may.
   *
   * A region that has it is also released by core when its secret is garbage-collected without
   * `close()` (with a warning), and when the worker thread that made it ends by `process.exit()` or
   * a normal end; it must then hold no reference to its secret. A region without it releases
   * itself (as memguard's do).
   */
  retire?(): void;
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

/** The `type` of the process warnings of this library. */
const WARNING_TYPE = 'SecureMemoryWarning';
/** The `code` of the warning for a secret the garbage collector wiped and released because nobody closed it. */
const UNRELEASED_WARNING = 'SECURE_MEMORY_UNRELEASED';

/**
 * What is needed to release one secret's region, kept apart from the secret so that the garbage
 * collector can release it (a held value must not reach the secret or the views it handed out).
 */
interface Lifetime {
  readonly backend: string;
  readonly size: number;
  region: SecretRegion | undefined;
  readonly onFree: () => void;
  /** Views handed out (their ArrayBuffers) that the garbage collector has not collected yet. */
  liveViews: number;
  /** True once wiped and retired, waiting for `liveViews` to reach 0 before `free`. */
  retired: boolean;
  /** True when a handed-out buffer was detached: the addresses are never released. */
  pinned: boolean;
  /** True once `release` ran (by close() or by the garbage collector). */
  released: boolean;
}

function freeRetired(life: Lifetime): void {
  const region = life.region;
  if (region === undefined || !life.retired || life.pinned || life.liveViews > 0) return;
  life.region = undefined;
  workerSecrets?.delete(life);
  try {
    region.free();
  } catch (error) {
    // A canary found damaged now was already reported by retire(); nothing is left to tell.
    void error;
  }
}

/** Releases the region of a handed-out buffer once it is collected (the last one lets a retired region go). */
const bufferRegistry = new FinalizationRegistry<Lifetime>((life) => {
  life.liveViews -= 1;
  freeRetired(life);
});

/** Wipes and releases the region of a secret that became unreachable without close(). */
const secretRegistry = new FinalizationRegistry<Lifetime>((life) => {
  if (life.released) return;
  let failure: unknown;
  try {
    release(life);
  } catch (error) {
    failure = error;
  }
  process.emitWarning(
    `A ${life.size}-byte secret of ${life.backend} was garbage-collected without close(); its memory was wiped and released`,
    {
      type: WARNING_TYPE,
      code: UNRELEASED_WARNING,
      ...(failure === undefined ? {} : { detail: `Releasing it failed: ${(failure as { code?: string }).code ?? 'error'}` }),
    },
  );
});

/**
 * The secrets of this thread that are not released yet, when it is a worker thread: when the
 * worker ends by returning or by `process.exit()`, its `exit` event wipes and frees them all (its
 * views die with it). A worker stopped by `terminate()` runs no JavaScript: see the backends.
 */
let workerSecrets: Set<Lifetime> | undefined;

function trackInWorker(life: Lifetime): void {
  if (isMainThread) return;
  if (workerSecrets === undefined) {
    const live = new Set<Lifetime>();
    workerSecrets = live;
    process.once('exit', () => {
      for (const each of [...live]) {
        each.liveViews = 0; // the thread's views end with it
        each.pinned = false;
        try {
          release(each);
          freeRetired(each);
        } catch {
          // a damaged canary has no one left to tell; the memory is released all the same
        }
      }
      live.clear();
    });
  }
  workerSecrets.add(life);
}

/**
 * Wipes the region, then frees it, or retires it while a handed-out view may still be reachable.
 * `onFree` runs once either way.
 */
function release(life: Lifetime): void {
  const region = life.region;
  if (region === undefined || life.released) return;
  life.released = true;
  try {
    region.wipe();
  } finally {
    try {
      if (region.retire !== undefined && (life.liveViews > 0 || life.pinned)) {
        life.retired = true;
        region.retire();
      } else {
        life.region = undefined;
        workerSecrets?.delete(life);
        region.free();
      }
    } finally {
      life.onFree();
    }
  }
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
    this.#life = { backend, size, region, onFree, liveViews: 0, retired: false, pinned: false, released: false };
    // Only regions that can be retired are released by core: the held value reaches the region,
    // and an older region (memguard's) holds its secret and releases itself when it is collected.
    if (region.retire !== undefined) {
      secretRegistry.register(this, this.#life, this);
      trackInWorker(this.#life);
    }
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
    return this.#life.backend;
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
    this.#life.liveViews += 1;
    bufferRegistry.register(buffer, this.#life);
    this.#handed = handed;
    return handed;
  }

  /** After a caller's access: a handed view that lost its bytes was detached (moved away); its memory is never released. */
  #checkHanded(): void {
    const handed = this.#handed;
    if (handed === undefined || !isEmptied(handed)) return;
    this.#life.pinned = true;
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
    secretRegistry.unregister(this);
    release(this.#life);
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
