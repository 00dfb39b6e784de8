/**
 * Byte views handed to this library, handled without ever reading `.buffer` of a caller's view
 * before its bytes are copied and it is wiped in place: V8 keeps a typed array of 64 bytes or less
 * inside its heap object, and reading `.buffer` (or anything that needs the buffer, such as
 * `subarray` or a native call) moves the bytes off the heap and abandons the old copy, unwiped.
 * Every check here goes through the intrinsic `%TypedArray%.prototype` getters, so a subclass, a
 * proxy or an object that only inherits from `Uint8Array.prototype` cannot run code or throw V8's
 * own TypeError.
 * @module
 */
import { MAX_SECRET_SIZE, assertSize, describeType } from './assert.js';
import { ErrorCode, SecureMemoryTypeError } from './errors.js';

const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

function getter(object: object, key: PropertyKey): (this: unknown) => unknown {
  const get = Object.getOwnPropertyDescriptor(object, key)?.get;
  if (get === undefined) throw new Error(`no intrinsic getter ${String(key)}`); // unreachable in a conforming engine
  return get;
}

const tagOf = getter(TypedArrayPrototype, Symbol.toStringTag);
const byteLengthGetter = getter(TypedArrayPrototype, 'byteLength');
const bufferGetter = getter(TypedArrayPrototype, 'buffer');
const arrayBufferByteLength = getter(ArrayBuffer.prototype, 'byteLength');
const intrinsicSet = (TypedArrayPrototype as { set: (this: Uint8Array, source: ArrayLike<number>, offset?: number) => void }).set;
const intrinsicFill = (TypedArrayPrototype as { fill: (this: Uint8Array, value: number) => Uint8Array }).fill;

/**
 * V8 keeps the bytes of a typed array of at most this many bytes inside the heap object; larger
 * ones always live in a separate backing store, whose `.buffer` can be read without a copy.
 */
export const MAX_ON_HEAP_BYTES = 64;

/**
 * True when `value` is a real `Uint8Array` (a `Buffer` is one), by its internal brand: no getter
 * of the value, no proxy trap and no `.buffer` read runs.
 */
export function isUint8Array(value: unknown): value is Uint8Array {
  return tagOf.call(value) === 'Uint8Array';
}

/** The byte length of a real `Uint8Array`, through the intrinsic getter (0 when detached). */
export function byteLengthOf(view: Uint8Array): number {
  return byteLengthGetter.call(view) as number;
}

/** True when the view's buffer is detached. Reads `.buffer` only of an empty view (it holds no bytes to abandon). */
function isDetached(view: Uint8Array): boolean {
  if (byteLengthOf(view) !== 0) return false;
  const buffer = bufferGetter.call(view) as ArrayBuffer;
  if (arrayBufferByteLength.call(buffer) !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

/**
 * Asserts that `value` is a `Uint8Array` (a `Buffer` is one) whose buffer is not detached. It never
 * reads `.buffer` of a view that holds bytes.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for any other type (also a proxy, or an object that only
 * inherits from `Uint8Array.prototype`); `ERR_INVALID_ARG_VALUE` when detached.
 */
export function assertBytes(value: unknown, label: string): asserts value is Uint8Array {
  if (isUint8Array(value)) {
    if (!isDetached(value)) return;
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `The "${label}" argument's buffer is detached`);
  }
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "${label}" argument must be a Uint8Array. Received ${describeType(value)}`,
  );
}

/** Views of secret memory, and views made from them by `subarray`: their memory may be read-only or inaccessible. */
const protectedViews = new WeakSet<object>();
/** The ArrayBuffers of secret memory (external, never on the V8 heap: reading them moves nothing). */
const protectedBuffers = new WeakSet<object>();

/**
 * Registers a view over memory this library (or a backend) protects, whose pages may be read-only
 * or inaccessible: ingestion copies such a source without wiping it, and a reader refuses it as a
 * target, instead of faulting on a write. Its memory must be external (not a small on-heap array):
 * this reads its `.buffer`.
 */
export function markProtectedView(view: Uint8Array): void {
  protectedViews.add(view);
  protectedBuffers.add(bufferGetter.call(view) as object);
}

/** Registers a view made over a registered buffer (by the species constructor of the views handed to actions). */
export function notePossiblyProtected(view: Uint8Array, buffer: unknown): void {
  if (typeof buffer === 'object' && buffer !== null && protectedBuffers.has(buffer)) protectedViews.add(view);
}

/**
 * True when the view is, or may be, over protected memory that must not be written: a registered
 * view, a view made from one by `subarray`, or a view of more than {@link MAX_ON_HEAP_BYTES} bytes
 * over a registered buffer (only then is `.buffer` read: such a view is never on the V8 heap). A
 * view of at most 64 bytes built by hand over a secret's `.buffer` is not recognized.
 */
export function isProtectedView(view: Uint8Array): boolean {
  if (protectedViews.has(view)) return true;
  if (byteLengthOf(view) <= MAX_ON_HEAP_BYTES) return false;
  return protectedBuffers.has(bufferGetter.call(view) as object);
}

/** Copies all of `source` into `target` at `offset` through the intrinsic `set` (no `.buffer` read). */
export function copyBytes(target: Uint8Array, source: Uint8Array, offset = 0): void {
  intrinsicSet.call(target, source, offset);
}

/** Zero-fills `view` in place through the intrinsic `fill` (no `.buffer` read). */
export function wipeBytes(view: Uint8Array): void {
  intrinsicFill.call(view, 0);
}

/**
 * Where ingested bytes go: `place(size, copyInto)` allocates `size` bytes, calls `copyInto` with a
 * writable view of exactly `size` bytes, and returns what it made. When it throws, it has released
 * what it took and wiped what `copyInto` wrote.
 */
export type IngestPlace<T> = (size: number, copyInto: (writable: Uint8Array) => void) => T;

/**
 * The one ingestion path of every backend: validates `source` (without reading its `.buffer`),
 * lets `place` copy its bytes into protected memory, then zero-fills `source` in place, so that a
 * small on-heap source leaves no copy. A source that is itself protected memory (a view handed to
 * an action, or a `subarray` of one, see {@link isProtectedView}) is copied and not wiped: its pages
 * are read-only, and its secret wipes them at close.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `source` is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when detached.
 * @throws {RangeError} `ERR_INVALID_SIZE` when it is empty or longer than `max`.
 * @throws what `place` throws; `source` is then left as it was.
 * @example
 * ```ts
 * const secret = ingestBytes(source, 'source', maxSize, (size, copyInto) => allocate(size, copyInto));
 * ```
 */
export function ingestBytes<T>(source: unknown, label: string, max: number, place: IngestPlace<T>): T;
export function ingestBytes<T>(source: unknown, label: string, max: number = MAX_SECRET_SIZE, place?: IngestPlace<T>): T {
  assertBytes(source, label);
  const size = byteLengthOf(source);
  assertSize(size, `${label}.byteLength`, max);
  const keep = isProtectedView(source);
  const result = (place as IngestPlace<T>)(size, (writable) => copyBytes(writable, source));
  if (!keep) wipeBytes(source);
  return result;
}

const byteOffsetGetter = getter(TypedArrayPrototype, 'byteOffset');

/**
 * What keeps a secret alive: a view handed to an action, every view made from it by `subarray`,
 * and its ArrayBuffer each hold their secret (an ephemeron: the secret lives while the key does),
 * so that the garbage collector never frees memory a reachable view points at.
 */
const owners = new WeakMap<object, object>();
const bufferOwners = new WeakMap<object, WeakRef<object>>();

function noTransfer(): SecureMemoryTypeError {
  return new SecureMemoryTypeError(
    ErrorCode.INVALID_THIS,
    "A secret's memory cannot be transferred or detached: copy the bytes instead (and wipe the copy)",
  );
}

/**
 * The prototype of the ArrayBuffers handed to actions: `transfer()` and `transferToFixedLength()`
 * (Node 22+) throw instead of moving a secret's memory to an ArrayBuffer the library cannot see.
 */
const GuardedBufferPrototype: object = Object.create(ArrayBuffer.prototype, {
  transfer: { value: function transfer(): never { throw noTransfer(); }, writable: true, configurable: true },
  transferToFixedLength: { value: function transferToFixedLength(): never { throw noTransfer(); }, writable: true, configurable: true },
});

/**
 * The class of the views handed to actions. Views made from one (`subarray`, through the species
 * constructor) are recognized as protected memory and keep the secret alive; `slice` and `map`
 * make ordinary copies.
 */
class SecretBytes extends Uint8Array {
  constructor(...args: unknown[]) {
    super(...(args as [ArrayBuffer, number, number]));
    const source = args[0];
    if (typeof source === 'object' && source !== null && protectedBuffers.has(source)) {
      protectedViews.add(this);
      const owner = bufferOwners.get(source)?.deref();
      if (owner !== undefined) owners.set(this, owner);
    }
  }
}

/**
 * Turns a fresh view over a secret's memory (on an ArrayBuffer object of its own, external, never
 * handed out before) into the view handed to actions: a {@link SecretBytes} over that buffer, whose
 * buffer refuses `transfer()`, registered as protected memory, and keeping `owner` alive while it
 * or its buffer is reachable. Returns the view and its buffer.
 */
export function handOutView(fresh: Uint8Array, owner: object): { view: Uint8Array; buffer: ArrayBuffer } {
  const buffer = bufferGetter.call(fresh) as ArrayBuffer;
  Object.setPrototypeOf(buffer, GuardedBufferPrototype);
  protectedBuffers.add(buffer);
  bufferOwners.set(buffer, new WeakRef(owner));
  owners.set(buffer, owner);
  const view = new SecretBytes(buffer, byteOffsetGetter.call(fresh) as number, byteLengthOf(fresh));
  return { view, buffer };
}

/** True when a view that held bytes now has none: its buffer was detached (transferred away). */
export function isEmptied(view: Uint8Array): boolean {
  return byteLengthOf(view) === 0;
}
