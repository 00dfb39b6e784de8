/**
 * memguard's LockedBuffer: a guarded, locked allocation whose bytes JavaScript reads and writes
 * through a view whose memory is wiped and made inaccessible (never detached) when the buffer is destroyed.
 * @module
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import {
  ErrorCode,
  SecureMemoryRangeError,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  MAX_SECRET_SIZE,
  REGION_PROBE,
  type RegionLocation,
  assertBytes,
  assertFd,
  assertOptions,
  assertSize,
  constantTimeEqual,
  describeType,
  invalidThis,
  Redacted,
} from '@secure-memory/core/backend';
import { assertInRange, destroyed, frozen, integrityError, readError } from './errors.js';
import { track } from './lifetime.js';
import { addon } from './native.js';
import { GuardedRegion } from './region.js';
import { Ledger, MIN_CANARY, pageSize } from './mapping.js';
import { assertReadable, GuardedView, V8_ON_HEAP_MAX, writable } from './views.js';

/** The typed arrays {@link LockedBuffer.typed} makes (memguard's Uint16() ... Int64()). */
export type TypedView = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | BigUint64Array | BigInt64Array;
/** The constructor of a {@link TypedView}. */
export interface TypedViewConstructor<T extends TypedView> {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
  readonly name: string;
}
const TYPED_VIEWS: readonly TypedViewConstructor<TypedView>[] = [
  Uint8Array,
  Int8Array,
  Uint16Array,
  Int16Array,
  Uint32Array,
  Int32Array,
  BigUint64Array,
  BigInt64Array,
] as unknown as readonly TypedViewConstructor<TypedView>[];

/** Options of the LockedBuffer constructors. */
export interface LockedBufferOptions {
  /**
   * `true`: when the buffer is garbage-collected without `destroy()`, emit a `SecureMemoryWarning`
   * (code `MEMGUARD_UNRELEASED`) with the stack where it was made. Costs a stack capture per buffer.
   * Default `false`: the memory is released silently.
   */
  debug?: boolean;
}

/** Options of the constructors that read from a file descriptor. */
export interface ReadOptions extends LockedBufferOptions {
  /**
   * `true`: an input that ends early gives a buffer of what was read (check `size`), as a reader
   * that may return less. Default `false`: an input that ends before `size` bytes (or before the
   * delimiter) is an error, as memguard's `io.ErrUnexpectedEOF`, and nothing is kept.
   */
  partial?: boolean;
}

/** The `partial` option of an options bag (validated after `debugOption`). */
function partialOption(options: ReadOptions | undefined): boolean {
  const partial: unknown = options?.['partial'];
  if (partial === undefined) return false;
  if (typeof partial === 'boolean') return partial;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "partial" option must be a boolean. Received ${describeType(partial)}`,
  );
}

/** The error of an input that ended early (Go's io.ErrUnexpectedEOF); nothing read is kept. */
function truncated(what: string): SecureMemoryRangeError {
  return new SecureMemoryRangeError(
    ErrorCode.INVALID_SIZE,
    `The descriptor ended ${what}: the bytes read were wiped (pass { partial: true } to keep a shorter input)`,
  );
}

/** Counters of every LockedBuffer of the process. */
const ledger = new Ledger();

/** Proves a LockedBuffer was made by this module's constructors. */
const TOKEN: unique symbol = Symbol('LockedBuffer');

/**
 * The buffer each view's memory belongs to: a view that is reachable keeps its buffer alive, so the
 * garbage collector never destroys a buffer under a view still in use (`enclave.open().bytes()`).
 */
const holders = new WeakMap<ArrayBuffer, LockedBuffer>();

/** The live region of a buffer (set by the class's static block: its private field, without a WeakMap). */
let regionOf: (buffer: LockedBuffer) => GuardedRegion | undefined;
/** The buffer's own view of its data, for this module (never handed out: no tombstone on destroy). */
let ownView: (buffer: LockedBuffer) => Uint8Array;


/** The `debug` option of an options bag, validated. */
function debugOption(options: unknown): boolean {
  assertOptions(options, 'options');
  const debug = options?.['debug'];
  if (debug === undefined) return false;
  if (typeof debug === 'boolean') return debug;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "debug" option must be a boolean. Received ${describeType(debug)}`,
  );
}

function assertOffset(offset: unknown, size: number): asserts offset is number {
  assertInRange(offset, 'offset', 0, size);
}

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

/** A source the caller hands over to be wiped must be writable, or wiping it would fault. */
function assertWipeable(source: Uint8Array, label: string): void {
  if (!writable(source)) throw frozen(`The "${label}" argument`);
}

function emptyInput(): SecureMemoryRangeError {
  return new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The descriptor gave no data: a buffer needs at least 1 byte');
}

/**
 * A guarded, locked buffer, after memguard's LockedBuffer. Make one with {@link newBuffer},
 * {@link newBufferFromBytes}, {@link newBufferRandom}, {@link newBufferFromFd} or
 * {@link newBufferFromFdUntil}; release it with `destroy()` (or a `using` declaration).
 *
 * `bytes()` is a view straight into the locked memory. When the buffer is destroyed (by `destroy()`,
 * {@link purge}, a signal caught by {@link catchSignal}, process exit, or the garbage collector)
 * every view's memory is wiped and made `PROT_NONE`, and never reused while the view lives: a view
 * used past that faults (SIGSEGV) rather than act as an empty key; handed back to this package it
 * throws `ERR_SECRET_CLOSED`. A reachable view keeps its buffer alive.
 * @example
 * ```ts
 * using key = newBufferRandom(32);           // frozen (read-only), like memguard's
 * const tag = createHmac('sha256', key.bytes()).update(data).digest();
 * ```
 */
export class LockedBuffer extends Redacted implements Disposable {
  #region: GuardedRegion | undefined;
  /** The view handed out by bytes() (never detached: a tombstone once destroyed). */
  #view: Uint8Array | undefined;
  /** The view this class uses itself (equalTo, copy, scramble): never handed out, detached on destroy. */
  #work: Uint8Array | undefined;

  static {
    regionOf = (buffer) => buffer.#live();
    ownView = (buffer) => buffer.#own(buffer.#alive());
  }

  /** @internal Use {@link newBuffer} and the other constructors. */
  constructor(token: typeof TOKEN, region: GuardedRegion, debug: boolean) {
    super();
    if (token !== TOKEN) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, 'LockedBuffer has no public constructor: use newBuffer()');
    }
    this.#region = region;
    track(this, region, 'LockedBuffer', debug, false);
  }

  static #check(self: unknown): LockedBuffer {
    if (typeof self === 'object' && self !== null && #region in self) return self as LockedBuffer;
    throw invalidThis('LockedBuffer');
  }

  /** The live region, or `undefined` once destroyed or purged. */
  #live(): GuardedRegion | undefined {
    const region = this.#region;
    if (region !== undefined && !region.alive) {
      // Purged (or collected) behind our back: forget it.
      this.#region = undefined;
      this.#view = undefined;
      this.#work = undefined;
      return undefined;
    }
    return region;
  }

  #alive(): GuardedRegion {
    const region = this.#live();
    if (region === undefined) throw destroyed();
    return region;
  }

  #mutable(what: string): GuardedRegion {
    const region = this.#alive();
    if (region.protection !== 'readwrite') throw frozen(what);
    return region;
  }

  #bytes(region: GuardedRegion): Uint8Array {
    if (this.#view === undefined) {
      const view = region.view();
      holders.set(view.buffer as ArrayBuffer, this);
      this.#view = view;
    }
    return this.#view;
  }

  #own(region: GuardedRegion): Uint8Array {
    this.#work ??= region.view(true);
    return this.#work;
  }

  /**
   * The view of the data, straight into locked memory (the same view at every call). Writable unless
   * the buffer is frozen, where a write through it faults (SIGSEGV): the MMU enforces read-only.
   * Detached when the buffer is destroyed.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy.
   */
  bytes(): Uint8Array {
    const self = LockedBuffer.#check(this);
    return self.#bytes(self.#alive());
  }

  /** The number of data bytes; 0 once destroyed (as memguard's). */
  get size(): number {
    return LockedBuffer.#check(this).#live()?.size ?? 0;
  }

  /** False once destroyed or purged. */
  get isAlive(): boolean {
    return LockedBuffer.#check(this).#live() !== undefined;
  }

  /** True when the data is writable (not frozen); false once destroyed. */
  get isMutable(): boolean {
    return LockedBuffer.#check(this).#live()?.protection === 'readwrite';
  }

  /**
   * Makes the data read-only (`mprotect(PROT_READ)`); `melt()` reverses it.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when mprotect fails.
   */
  freeze(): void {
    LockedBuffer.#check(this).#alive().protect('read');
  }

  /**
   * Makes the data writable again (`mprotect(PROT_READ | PROT_WRITE)`).
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when mprotect fails.
   */
  melt(): void {
    LockedBuffer.#check(this).#alive().protect('readwrite');
  }

  /**
   * Copies `src` to the start of the buffer: `min(src.length, size)` bytes, in time that depends on
   * the length only. Prefer {@link LockedBuffer.move}, which also wipes `src`.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `src` is not a Uint8Array.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when frozen.
   */
  copy(src: Uint8Array): void {
    LockedBuffer.#check(this).copyAt(0, src);
  }

  /**
   * Copies `src` into the buffer from `offset`: `min(src.length, size - offset)` bytes.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad `offset` or `src` type.
   * @throws {RangeError} `ERR_OUT_OF_RANGE` when `offset` is not a whole number from 0 to `size`.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when frozen.
   */
  copyAt(offset: number, src: Uint8Array): void {
    const self = LockedBuffer.#check(this);
    const region = self.#mutable('The buffer');
    assertOffset(offset, region.size);
    assertBytes(src, 'src');
    assertReadable(src);
    self.#copyIn(region, offset, src);
  }

  /**
   * Copies what fits of `src` in. Never reads `src.buffer` (nor makes a `subarray`) of a caller's array
   * that may still hold its bytes inside the V8 heap: that would move them off the heap and abandon
   * an unwiped copy there.
   */
  #copyIn(region: GuardedRegion, offset: number, src: Uint8Array): void {
    const count = Math.min(src.byteLength, region.size - offset);
    if (count === 0) return;
    const view = this.#own(region);
    // TypedArray.prototype.set is a memmove: its time depends on the length only.
    if (count === src.byteLength) view.set(src, offset);
    else if (src.byteLength > V8_ON_HEAP_MAX || GuardedView.isOurs(src)) view.set(src.subarray(0, count), offset);
    else for (let i = 0; i < count; i += 1) view[offset + i] = src[i] as number;
  }

  /**
   * Copies `src` to the start of the buffer, then zero-fills all of `src`.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `src` is not a Uint8Array.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when this
   * buffer is frozen or `src` is a read-only view (nothing is copied then).
   */
  move(src: Uint8Array): void {
    LockedBuffer.#check(this).moveAt(0, src);
  }

  /**
   * Copies `src` into the buffer from `offset`, then zero-fills all of `src`.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad `offset` or `src` type.
   * @throws {RangeError} `ERR_OUT_OF_RANGE` when `offset` is not a whole number from 0 to `size`.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when this
   * buffer is frozen or `src` is a read-only view (nothing is copied then).
   */
  moveAt(offset: number, src: Uint8Array): void {
    const self = LockedBuffer.#check(this);
    const region = self.#mutable('The buffer');
    assertOffset(offset, region.size);
    assertBytes(src, 'src');
    assertReadable(src);
    assertWipeable(src, 'src');
    self.#copyIn(region, offset, src);
    src.fill(0);
  }

  /**
   * Compares the data with `buf` in constant time (for equal lengths; different lengths are unequal).
   * A destroyed buffer equals nothing (as memguard's).
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `buf` is not a Uint8Array.
   */
  equalTo(buf: Uint8Array): boolean {
    const self = LockedBuffer.#check(this);
    assertBytes(buf, 'buf');
    assertReadable(buf);
    const region = self.#live();
    if (region === undefined) return false;
    return constantTimeEqual(self.#own(region), buf);
  }

  /**
   * Overwrites the data with zeros. Does nothing once destroyed (there is nothing left to wipe).
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when frozen.
   */
  wipe(): void {
    const self = LockedBuffer.#check(this);
    if (self.#live() === undefined) return;
    self.#mutable('The buffer').wipeData();
  }

  /**
   * Overwrites the data with bytes from the CSPRNG.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy; `ERR_PROTECTION_FAILED` when frozen.
   */
  scramble(): void {
    const self = LockedBuffer.#check(this);
    randomFillSync(self.#own(self.#mutable('The buffer')));
  }

  /**
   * Detaches every view, checks the canary, wipes the memory, unlocks and unmaps it. Idempotent.
   * @throws {SecureMemoryError} `ERR_INTEGRITY` when the canary before the data was overwritten (the
   * memory is wiped and released first); `ERR_PROTECTION_FAILED` when the memory could not be made
   * writable to be wiped: it was unmapped unwiped (the kernel drops the pages) and the buffer is
   * destroyed; or, if munmap failed too, the buffer stays alive (its views detached: call `destroy()`
   * again).
   */
  destroy(): void {
    const self = LockedBuffer.#check(this);
    const region = self.#region;
    if (region === undefined) return;
    self.#view = undefined; // its memory is wiped and PROT_NONE from here on (a kept view faults)
    self.#work = undefined; // detached by region.destroy()
    const intact = region.destroy();
    self.#region = undefined;
    if (!intact) throw integrityError();
  }

  /** Same as `destroy()`, for `using` declarations. */
  [Symbol.dispose](): void {
    this.destroy();
  }

  /**
   * Where the data is, for native probes (the testkit's guard-page and canary checks): the first data
   * byte, right-aligned against the trailing guard page, and the size.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy.
   */
  [REGION_PROBE](): RegionLocation {
    const region = LockedBuffer.#check(this).#alive();
    return { address: region.data, size: region.size };
  }

  /** The redacted form, such as `LockedBuffer(32 bytes)`; never the bytes. */
  override toString(): string {
    const self = LockedBuffer.#check(this);
    const region = self.#live();
    if (region === undefined) return 'LockedBuffer(destroyed)';
    return `LockedBuffer(${region.size} bytes${region.protection === 'readwrite' ? '' : ', frozen'})`;
  }

  /**
   * A typed array of the asked type over the buffer's memory (memguard's Uint16(), Int64()...):
   * `Math.floor(size / BYTES_PER_ELEMENT)` elements, over the same memory as `bytes()`, so it is
   * read-only while frozen and faults once the buffer is destroyed, as `bytes()` does. memguard's
   * ByteArray8()...ByteArray64() are `bytes().subarray(0, n)` here.
   * @throws {TypeError} `ERR_INVALID_ARG_VALUE` for a constructor other than Uint8Array, Int8Array,
   * Uint16Array, Int16Array, Uint32Array, Int32Array, BigUint64Array or BigInt64Array.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` after destroy.
   * @example
   * ```ts
   * const words = buf.typed(Uint32Array); // buf.size 10 -> 2 elements
   * ```
   */
  typed<T extends TypedView>(type: TypedViewConstructor<T>): T {
    const self = LockedBuffer.#check(this);
    if (!TYPED_VIEWS.includes(type as unknown as TypedViewConstructor<TypedView>)) {
      throw new SecureMemoryTypeError(
        ErrorCode.INVALID_ARG_VALUE,
        `The "type" argument must be one of ${TYPED_VIEWS.map((t) => t.name).join(', ')}. Received ${describeType(type)}`,
      );
    }
    const region = self.#alive();
    const view = self.#bytes(region);
    return new type(view.buffer as ArrayBuffer, 0, Math.floor(region.size / type.BYTES_PER_ELEMENT));
  }

  /**
   * An io.Reader of the buffer's data (memguard's Reader()): each `read(target)` copies the next
   * bytes into `target` and returns how many, 0 at the end. `target` is your memory: wipe it.
   * @throws {SecureMemoryError} `read` throws `ERR_SECRET_CLOSED` once the buffer is destroyed, and
   * `ERR_PROTECTION_FAILED` for a read-only target of this package.
   */
  reader(): { read(target: Uint8Array): number } {
    const self = LockedBuffer.#check(this);
    self.#alive();
    let position = 0;
    return {
      read: (target: Uint8Array): number => {
        assertBytes(target, 'target');
        assertReadable(target);
        if (!writable(target)) throw frozen('The "target" argument');
        const region = self.#alive();
        const count = Math.min(target.byteLength, region.size - position);
        if (count <= 0) return 0;
        target.set(self.#own(region).subarray(position, position + count));
        position += count;
        return count;
      },
    };
  }

  get [Symbol.toStringTag](): string {
    return 'LockedBuffer';
  }
}

function make(size: number, debug: boolean): LockedBuffer {
  return new LockedBuffer(TOKEN, GuardedRegion.allocate(size, ledger), debug);
}

/**
 * Runs `prepare` on a buffer just made; when it throws, destroys the buffer (its memory is wiped and
 * released) and rethrows the first error.
 */
function prepared(buffer: LockedBuffer, prepare: (buffer: LockedBuffer) => void): LockedBuffer {
  try {
    prepare(buffer);
  } catch (error) {
    try {
      buffer.destroy();
    } catch {
      // the first error is the one to report; a region that could not be released stays listed for purge
    }
    throw error;
  }
  return buffer;
}

/**
 * A mutable, zeroed LockedBuffer over a region leased from the pool (for Enclave.open and Stream):
 * destroying it gives the mapping back to the pool, wiped.
 * @throws {SecureMemoryError} as {@link newBuffer}.
 */
export function leaseBuffer(size: number, debug: boolean): { buffer: LockedBuffer; region: GuardedRegion } {
  const region = GuardedRegion.lease(size, ledger);
  return { buffer: new LockedBuffer(TOKEN, region, debug), region };
}

/**
 * The live region of a buffer made here.
 * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed.
 */
export function bufferRegion(buffer: LockedBuffer): GuardedRegion {
  const region = regionOf(buffer);
  if (region === undefined) throw destroyed();
  return region;
}

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
  const buffer = make(size, debug);
  let done = 0;
  try {
    const region = bufferRegion(buffer);
    while (done < size) {
      const n = readInto(fd, region, done, size - done);
      if (n === 0) break;
      done += n;
    }
  } catch (error) {
    buffer.destroy();
    throw error;
  }
  if (done === 0) {
    buffer.destroy();
    throw emptyInput();
  }
  if (done < size && !partial) {
    buffer.destroy();
    throw truncated(`after ${done} of ${size} bytes`);
  }
  if (done < size) return shrink(buffer, done, debug);
  return prepared(buffer, (b) => b.freeze());
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
  // The first buffer fills its pages exactly (one page minus the canary).
  let capacity = page - MIN_CANARY;
  let buffer = make(capacity, debug);
  let done = 0;
  let found = false;
  try {
    for (;;) {
      if (done === capacity) {
        if (capacity + page > MAX_SECRET_SIZE) {
          throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The data before the delimiter is larger than 1 GiB');
        }
        const bigger = make(capacity + page, debug);
        const old = buffer;
        buffer = bigger; // from here the catch below releases the new one
        bigger.copy(ownView(old));
        capacity += page;
        old.destroy();
      }
      const region = bufferRegion(buffer);
      if (readInto(fd, region, done, 1) === 0) break;
      const own = ownView(buffer);
      if (own[done] === delim) {
        own[done] = 0;
        found = true;
        break;
      }
      done += 1;
    }
  } catch (error) {
    buffer.destroy();
    throw error;
  }
  if (done === 0) {
    buffer.destroy();
    throw emptyInput();
  }
  if (!found && !partial) {
    buffer.destroy();
    throw truncated(`before the delimiter, after ${done} bytes`);
  }
  return shrink(buffer, done, debug);
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
  let capacity = pageSize() - MIN_CANARY;
  let buffer = make(capacity, debug);
  let done = 0;
  try {
    for (;;) {
      if (done === capacity) {
        if (capacity >= MAX_SECRET_SIZE) {
          throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The input is larger than 1 GiB');
        }
        const next = Math.min(MAX_SECRET_SIZE, capacity * 2 + MIN_CANARY);
        const bigger = make(next, debug);
        const old = buffer;
        buffer = bigger; // from here the catch below releases the new one
        bigger.copy(ownView(old));
        capacity = next;
        old.destroy();
      }
      const n = readInto(fd, bufferRegion(buffer), done, capacity - done);
      if (n === 0) break;
      done += n;
    }
  } catch (error) {
    buffer.destroy();
    throw error;
  }
  if (done === 0) {
    buffer.destroy();
    throw emptyInput();
  }
  return shrink(buffer, done, debug);
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
  const buffer = make(size, debug);
  let done = 0;
  try {
    const own = ownView(buffer);
    while (done < size) {
      const n = stream.read(own.subarray(done));
      if (n === 0) break;
      done += n;
    }
  } catch (error) {
    buffer.destroy();
    throw error;
  }
  if (done === 0) {
    buffer.destroy();
    throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, 'The stream is empty: a buffer needs at least 1 byte');
  }
  if (done < size && !partial) {
    buffer.destroy();
    throw new SecureMemoryRangeError(ErrorCode.INVALID_SIZE, `The stream ended after ${done} of ${size} bytes: the bytes read were wiped`);
  }
  if (done < size) return shrink(buffer, done, debug);
  return prepared(buffer, (b) => b.freeze());
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

/** Counters of every LockedBuffer of the process: live buffers, locked and mapped bytes. */
export function lockedBufferStats(): { buffers: number; lockedBytes: number; mappedBytes: number; leaked: number } {
  return { buffers: ledger.regions, lockedBytes: ledger.lockedBytes, mappedBytes: ledger.mappedBytes, leaked: ledger.leaked };
}
