/**
 * One guarded allocation, laid out as memguard lays it out:
 *
 * ```
 * [guard page][inner pages: canary slack | data, right-aligned][guard page]
 * ```
 *
 * The guard pages are `PROT_NONE`, so a native access one byte past the data, or into the page
 * before the first inner page, faults. The inner pages are locked (`mlock`), left out of core
 * dumps (`MADV_DONTDUMP`) and wiped in forked children (`MADV_WIPEONFORK`). The slack before the
 * data holds a random per-buffer canary, checked on destroy. Every view handed to JavaScript is an
 * external ArrayBuffer that is detached before the memory is released, so a view kept too long
 * reads zero bytes instead of faulting.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { BACKEND, destroyed, lockError, systemError } from './errors.js';
import { assertMapHeadroom, bufferMapped, bufferUnmapped } from './map-budget.js';
import { type Addon, addon } from './native.js';

/** The fewest canary bytes before the data: a size that fills its pages exactly gets one more page. */
export const MIN_CANARY = 16;
/** The length of a buffer's random canary pattern, repeated across the slack. */
const CANARY_PATTERN = 32;

/** The protection of the inner pages. */
export type Protection = 'none' | 'read' | 'readwrite';

/** Counters of a set of regions (a factory's, or the LockedBuffers'). */
export class Ledger {
  /** Live regions. */
  regions = 0;
  /** Bytes locked in RAM (the inner pages). */
  lockedBytes = 0;
  /** Bytes mapped (inner pages and both guard pages). */
  mappedBytes = 0;
  /** Regions that were wiped but could not be unmapped (a view could not be detached, or munmap failed). */
  leaked = 0;
}

/** Every region not yet destroyed, for {@link purgeRegions}. */
const live = new Set<GuardedRegion>();
/** The region each view's ArrayBuffer points into. */
const owners = new WeakMap<ArrayBuffer, GuardedRegion>();

let cachedPageSize = 0;

/** The system page size. */
export function pageSize(): number {
  if (cachedPageSize === 0) cachedPageSize = addon().pageSize();
  return cachedPageSize;
}

/** The region a view points into, if it is one of ours and not yet revoked. */
export function ownerOf(bytes: Uint8Array): GuardedRegion | undefined {
  return owners.get(bytes.buffer as ArrayBuffer);
}

/** True when `bytes` may be written: not a view of one of our regions that is read-only or inaccessible now. */
export function writable(bytes: Uint8Array): boolean {
  const owner = ownerOf(bytes);
  return owner === undefined || owner.protection === 'readwrite';
}

/** Fills `slack` with `pattern` repeated from its first byte (memcpy by doubling). */
function fillCanary(slack: Uint8Array, pattern: Uint8Array): void {
  const length = slack.byteLength;
  slack.set(pattern.subarray(0, Math.min(pattern.byteLength, length)));
  for (let filled = pattern.byteLength; filled < length; filled *= 2) {
    slack.copyWithin(filled, 0, Math.min(filled, length - filled));
  }
}

/**
 * True when `slack` is still `pattern` repeated: its first bytes equal the pattern, and every byte
 * equals the one a pattern's length before it (two memcmp, whatever the slack's length).
 */
function canaryIntact(slack: Uint8Array, pattern: Uint8Array): boolean {
  const bytes = Buffer.from(slack.buffer, slack.byteOffset, slack.byteLength);
  const head = Math.min(pattern.byteLength, bytes.byteLength);
  if (!bytes.subarray(0, head).equals(pattern.subarray(0, head))) return false;
  return bytes.subarray(pattern.byteLength).equals(bytes.subarray(0, Math.max(0, bytes.byteLength - pattern.byteLength)));
}

/**
 * An external ArrayBuffer over native memory. A runtime that forbids them (Electron's V8 sandbox)
 * makes the addon throw; that is `ERR_BACKEND_UNAVAILABLE` here.
 */
function externalView(lib: Addon, address: bigint, length: number): ArrayBuffer {
  try {
    return lib.view(address, length);
  } catch (cause) {
    throw new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'This runtime does not allow external ArrayBuffers', {
      backend: BACKEND,
      cause,
    });
  }
}

function protFlags(lib: Addon, protection: Protection): number {
  if (protection === 'none') return lib.PROT_NONE;
  return protection === 'read' ? lib.PROT_READ : lib.PROT_READ | lib.PROT_WRITE;
}

/**
 * A guarded, locked allocation holding `size` data bytes. Only this package's LockedBuffers and
 * secrets call it, with arguments they validated.
 */
export class GuardedRegion {
  /** The number of data bytes. */
  readonly size: number;
  /** The address of the first data byte (right-aligned against the trailing guard page). */
  readonly data: bigint;
  readonly #lib: Addon;
  readonly #base: bigint;
  readonly #total: number;
  readonly #inner: bigint;
  readonly #innerLength: number;
  readonly #canary: Uint8Array;
  readonly #ledger: Ledger;
  readonly #views = new Set<ArrayBuffer>();
  #protection: Protection = 'readwrite';
  #alive = true;
  /** A view could not be detached: the memory must never be unmapped. */
  #pinned = false;

  private constructor(lib: Addon, base: bigint, total: number, innerLength: number, size: number, ledger: Ledger) {
    const page = pageSize();
    this.#lib = lib;
    this.#base = base;
    this.#total = total;
    this.#inner = base + BigInt(page);
    this.#innerLength = innerLength;
    this.size = size;
    this.data = this.#inner + BigInt(innerLength - size);
    this.#ledger = ledger;
    this.#canary = new Uint8Array(new ArrayBuffer(CANARY_PATTERN));
    randomFillSync(this.#canary);
  }

  /**
   * Maps, protects, locks and advises a region of `size` data bytes, writes its canary, and leaves
   * the data zeroed and writable. On failure it unmaps what it mapped and leaves everything else as
   * it was.
   * @throws {SecureMemoryError} `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED`, `ERR_MEMLOCK_LIMIT` or `ERR_PROTECTION_FAILED`.
   */
  static allocate(size: number, ledger: Ledger): GuardedRegion {
    const lib = addon();
    assertMapHeadroom();
    const page = pageSize();
    const innerLength = Math.ceil((size + MIN_CANARY) / page) * page;
    const total = innerLength + 2 * page;
    const base = lib.map(total);
    if (typeof base === 'number') throw systemError(ErrorCode.ALLOCATION_FAILED, 'mmap', base, total);
    const inner = base + BigInt(page);
    try {
      let errno = lib.protect(inner, innerLength, lib.PROT_READ | lib.PROT_WRITE);
      if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, innerLength);
      errno = lib.lock(inner, innerLength);
      if (errno !== 0) throw lockError(errno, innerLength);
      errno = lib.advise(base, total, lib.MADV_DONTDUMP);
      if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'madvise', errno, total);
      errno = lib.advise(base, total, lib.MADV_WIPEONFORK);
      if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'madvise', errno, total);
    } catch (error) {
      lib.unmap(base, total); // unlocks too; nothing was written yet
      throw error;
    }
    const region = new GuardedRegion(lib, base, total, innerLength, size, ledger);
    try {
      region.#withSlack((slack) => fillCanary(slack, region.#canary));
    } catch (error) {
      lib.unmap(base, total);
      throw error;
    }
    live.add(region);
    ledger.regions += 1;
    ledger.lockedBytes += innerLength;
    ledger.mappedBytes += total;
    bufferMapped();
    return region;
  }

  /** True until destroyed (or purged). */
  get alive(): boolean {
    return this.#alive;
  }

  /** The protection of the data now. */
  get protection(): Protection {
    return this.#protection;
  }

  /** Bytes of the inner pages (locked). */
  get innerLength(): number {
    return this.#innerLength;
  }

  /** Runs `action` on a short-lived view of the canary slack (the inner pages must be readable). */
  #withSlack<R>(action: (slack: Uint8Array) => R): R {
    const buffer = externalView(this.#lib, this.#inner, this.#innerLength - this.size);
    try {
      return action(new Uint8Array(buffer));
    } finally {
      if (this.#lib.detach(buffer) !== 0) this.#pinned = true;
    }
  }

  /**
   * Changes the protection of the inner pages.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed; `ERR_PROTECTION_FAILED` when mprotect fails.
   */
  protect(protection: Protection): void {
    if (!this.#alive) throw destroyed();
    if (protection === this.#protection) return;
    const errno = this.#lib.protect(this.#inner, this.#innerLength, protFlags(this.#lib, protection));
    if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, this.#innerLength);
    this.#protection = protection;
  }

  /**
   * A new view of the data: an external ArrayBuffer, detached by {@link revoke} or {@link destroy}.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed.
   */
  view(): Uint8Array {
    if (!this.#alive) throw destroyed();
    const buffer = externalView(this.#lib, this.data, this.size);
    this.#views.add(buffer);
    owners.set(buffer, this);
    return new Uint8Array(buffer);
  }

  /** Detaches the view's ArrayBuffer: every typed array over it now has length 0. */
  revoke(view: Uint8Array): void {
    this.#detach(view.buffer as ArrayBuffer);
  }

  #detach(buffer: ArrayBuffer): void {
    if (!this.#views.delete(buffer)) return;
    owners.delete(buffer);
    if (this.#lib.detach(buffer) !== 0) this.#pinned = true;
  }

  /** Zero-fills the data; the region must be writable. */
  wipeData(): void {
    if (!this.#alive) throw destroyed();
    this.#lib.wipe(this.data, this.size);
  }

  /**
   * Detaches every view, checks the canary, wipes the inner pages, unlocks and unmaps. Idempotent.
   * Returns `false` when the canary was damaged (the memory is released all the same).
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when the pages cannot be made writable to be
   * wiped; the region then stays alive (without views) and may be destroyed again.
   */
  destroy(): boolean {
    if (!this.#alive) return true;
    for (const buffer of [...this.#views]) this.#detach(buffer);
    this.protect('readwrite');
    const intact = this.#withSlack((slack) => canaryIntact(slack, this.#canary));
    this.#lib.wipe(this.#inner, this.#innerLength);
    this.#alive = false;
    live.delete(this);
    const ledger = this.#ledger;
    ledger.regions -= 1;
    if (this.#pinned) {
      // A view could not be detached (never seen on Node; possible in a runtime that refuses to
      // detach external buffers): the zeroed pages stay mapped and readable rather than fault.
      ledger.leaked += 1;
      return intact;
    }
    this.#lib.unlock(this.#inner, this.#innerLength); // munmap unlocks too; first, so a failed munmap leaves nothing locked
    if (this.#lib.unmap(this.#base, this.#total) !== 0) {
      this.#lib.protect(this.#inner, this.#innerLength, this.#lib.PROT_NONE); // zeroed already; best effort
      ledger.leaked += 1;
    } else {
      bufferUnmapped();
    }
    ledger.lockedBytes -= this.#innerLength;
    ledger.mappedBytes -= this.#total;
    return intact;
  }
}

/** The outcome of {@link purgeRegions}. */
export interface PurgeOutcome {
  /** Regions destroyed. */
  destroyed: number;
  /** Regions whose canary was damaged. */
  damaged: number;
  /** Errors other than a damaged canary (a failed mprotect), after which the region stays alive. */
  errors: unknown[];
}

/** Destroys every live region of the process (LockedBuffers and secrets alike). */
export function purgeRegions(): PurgeOutcome {
  const outcome: PurgeOutcome = { destroyed: 0, damaged: 0, errors: [] };
  for (const region of [...live]) {
    try {
      if (!region.destroy()) outcome.damaged += 1;
      outcome.destroyed += 1;
    } catch (error) {
      outcome.errors.push(error);
    }
  }
  return outcome;
}

/** Live regions of the process. */
export function liveRegions(): number {
  return live.size;
}
