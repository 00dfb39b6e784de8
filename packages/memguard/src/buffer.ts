/**
 * memguard's LockedBuffer: a guarded, locked allocation whose bytes JavaScript reads and writes
 * through a view whose memory is wiped and made inaccessible (never detached) when the buffer is destroyed.
 * This module is the class alone (a little over 400 lines: one method each of memguard's, with its
 * JSDoc); the constructors are in buffer-new.ts and buffer-read.ts, their options in options.ts.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { ErrorCode, SecureMemoryTypeError } from '@secure-memory/core';
import {
  REGION_PROBE,
  type RegionLocation,
  assertBytes,
  constantTimeEqual,
  describeType,
  invalidThis,
  Redacted,
} from '@secure-memory/core/backend';
import { assertInRange, destroyed, frozen, integrityError } from './errors.js';
import { track } from './lifetime.js';
import { Ledger } from './mapping.js';
import { GuardedRegion } from './region.js';
import { assertReadable, assertWipeable, GuardedView, V8_ON_HEAP_MAX } from './views.js';

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
/** The buffer's own view of its data (set by the class's static block). */
let ownViewOf: (buffer: LockedBuffer) => Uint8Array;

function assertOffset(offset: unknown, size: number): asserts offset is number {
  assertInRange(offset, 'offset', 0, size);
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
    ownViewOf = (buffer) => buffer.#own(buffer.#alive());
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
    LockedBuffer.#check(this).#put(offset, src, false);
  }

  /**
   * Checks `offset` and `src`, copies what fits of `src` in from `offset`, and (`wipe`) zero-fills
   * all of `src` after; with `wipe`, a read-only `src` is refused before anything is copied.
   */
  #put(offset: number, src: Uint8Array, wipe: boolean): void {
    const region = this.#mutable('The buffer');
    assertOffset(offset, region.size);
    assertBytes(src, 'src');
    assertReadable(src);
    if (wipe) assertWipeable(src, 'src');
    this.#copyIn(region, offset, src);
    if (wipe) src.fill(0);
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
    LockedBuffer.#check(this).#put(offset, src, true);
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
        assertWipeable(target, 'target');
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

/**
 * A mutable, zeroed LockedBuffer of `size` bytes (validated by the caller) in its own mapping.
 * @throws {SecureMemoryError} as {@link newBuffer}.
 */
export function make(size: number, debug: boolean): LockedBuffer {
  return new LockedBuffer(TOKEN, GuardedRegion.allocate(size, ledger), debug);
}

/**
 * The buffer's own view of its data, for this package's constructors (never handed out: no
 * tombstone on destroy; detached when the buffer is destroyed).
 * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed.
 */
export function ownView(buffer: LockedBuffer): Uint8Array {
  return ownViewOf(buffer);
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

/** Counters of every LockedBuffer of the process: live buffers, locked and mapped bytes. */
export function lockedBufferStats(): { buffers: number; lockedBytes: number; mappedBytes: number; leaked: number } {
  return { buffers: ledger.regions, lockedBytes: ledger.lockedBytes, mappedBytes: ledger.mappedBytes, leaked: ledger.leaked };
}
