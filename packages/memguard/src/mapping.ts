/**
 * The system layer of a guarded region: one mapping `[guard page][inner pages][guard page]`, made
 * (mmap, mprotect, mlock, madvise) and unmapped, with the canary pattern of its slack, the counters
 * of a set of regions, and the munmaps that failed and are retried.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { ErrorCode } from '@secure-memory/core';
import { lockError, systemError } from './errors.js';
import { mapBudget } from './map-budget.js';
import { type Addon, addon } from './native.js';

/** The fewest canary bytes before the data: a size that fills its pages exactly gets one more page. */
export const MIN_CANARY = 16;
/** The length of a buffer's random canary pattern, repeated across the slack. */
const CANARY_PATTERN = 32;

/** CSPRNG bytes that canary patterns are cut from, refilled when used up (one call per 128 mappings). */
const canarySource = new Uint8Array(new ArrayBuffer(CANARY_PATTERN * 128));
let canaryOffset = canarySource.byteLength;

/**
 * A fresh random canary pattern. Cut from a buffer of CSPRNG bytes that is refilled when used up:
 * randomFillSync costs about as much for 4 KiB as for 32 bytes, and a mapping used to pay it
 * whole. The bytes taken are zeroed in the source, so no pattern is kept twice.
 */
function newCanary(): Uint8Array {
  if (canaryOffset === canarySource.byteLength) {
    randomFillSync(canarySource);
    canaryOffset = 0;
  }
  const end = canaryOffset + CANARY_PATTERN;
  const canary = new Uint8Array(new ArrayBuffer(CANARY_PATTERN)); // off the heap, as native code reads it
  canary.set(canarySource.subarray(canaryOffset, end));
  canarySource.fill(0, canaryOffset, end);
  canaryOffset = end;
  return canary;
}

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
  /**
   * Regions that were wiped but are still mapped: a view could not be detached (for good), or
   * munmap failed (tried again at the next allocation, drain or purge).
   */
  leaked = 0;
}

/** A range whose munmap failed: it holds nothing secret (wiped, or never written) and is retried. */
interface PendingUnmap {
  readonly base: bigint;
  readonly total: number;
  /** The ledger whose `leaked` counts it until it is unmapped. */
  readonly ledger: Ledger | undefined;
  /** Counted by the mapping budget (mapBudget.added) already. */
  readonly counted: boolean;
}

/** Ranges to unmap again: munmap failed on them (never seen outside fault injection). */
const pendingUnmaps: PendingUnmap[] = [];

/**
 * Unmaps `total` bytes at `base`, which hold nothing secret any more; when munmap fails, keeps the
 * range to try again (see {@link retryUnmaps}) and counts it in `ledger.leaked` until then. True
 * when it was unmapped now.
 */
export function unmapOrDefer(lib: Addon, base: bigint, total: number, ledger: Ledger | undefined, counted: boolean): boolean {
  if (lib.unmap(base, total) === 0) {
    if (counted) mapBudget.removed();
    return true;
  }
  deferUnmap(base, total, ledger, counted);
  return false;
}

/** Keeps a range whose munmap failed, to try again (see {@link retryUnmaps}). */
function deferUnmap(base: bigint, total: number, ledger: Ledger | undefined, counted: boolean): void {
  pendingUnmaps.push({ base, total, ledger, counted });
  if (ledger !== undefined) ledger.leaked += 1;
}

/** Tries every deferred munmap again; returns how many are still pending. */
export function retryUnmaps(lib: Addon): number {
  if (pendingUnmaps.length === 0) return 0;
  for (const entry of pendingUnmaps.splice(0)) {
    if (lib.unmap(entry.base, entry.total) !== 0) {
      pendingUnmaps.push(entry);
      continue;
    }
    if (entry.counted) mapBudget.removed();
    if (entry.ledger !== undefined) entry.ledger.leaked -= 1;
  }
  return pendingUnmaps.length;
}

/** Munmaps that failed and wait to be retried (for the pool's stats). */
export function pendingUnmapCount(): number {
  return pendingUnmaps.length;
}

let cachedPageSize = 0;

/** The system page size. */
export function pageSize(): number {
  if (cachedPageSize === 0) cachedPageSize = addon().pageSize();
  return cachedPageSize;
}

export function protFlags(lib: Addon, protection: Protection): number {
  if (protection === 'none') return lib.PROT_NONE;
  return protection === 'read' ? lib.PROT_READ : lib.PROT_READ | lib.PROT_WRITE;
}

/** The inner pages a region of `size` data bytes needs: the data plus at least {@link MIN_CANARY} bytes. */
export function innerLengthFor(size: number): number {
  const page = pageSize();
  return Math.ceil((size + MIN_CANARY) / page) * page;
}

/** One guarded mapping: `[guard page][inner pages][guard page]`, with its canary pattern. */
export interface Mapping {
  readonly base: bigint;
  readonly total: number;
  readonly inner: bigint;
  readonly innerLength: number;
  /** The random pattern repeated across the slack before the data. */
  readonly canary: Uint8Array;
  /** How many bytes from the first inner byte hold the pattern now. */
  slack: number;
  /** A view could not be detached: the memory must never be unmapped or reused. */
  pinned: boolean;
  /** Entombed from a leased region: once its views are released it goes back to the pool. */
  fromLease?: boolean;
  /**
   * Views handed out over this mapping that V8 has not released yet (token -> a weak reference to
   * the ArrayBuffer made for it). While any is outstanding, the mapping is never reused nor unmapped:
   * once its region is destroyed it is a tombstone, wiped and `PROT_NONE`, so that a kept view faults.
   */
  readonly outstanding: Map<number, WeakRef<ArrayBuffer>>;
  /** Destroyed while views were outstanding: wiped, `PROT_NONE`, waiting for them (see {@link reclaimViews}). */
  entombed: boolean;
}

/**
 * Maps, protects, locks and advises `innerLength` bytes between two guard pages, and leaves them
 * zeroed and writable. On failure it unmaps what it mapped (nothing was written to it yet; a failed
 * munmap is retried later). Munmaps that failed before are retried first. `onFault`: lock with MLOCK_ONFAULT
 * (charged to RLIMIT_MEMLOCK all the same; each page is locked when first touched, and making the
 * pages writable again does not walk them), for the pool's mappings that toggle between read-only
 * and writable at every lease.
 * @throws {SecureMemoryError} `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED`, `ERR_MEMLOCK_LIMIT` or `ERR_PROTECTION_FAILED`.
 */
export function mapFresh(lib: Addon, innerLength: number, onFault = false): Mapping {
  retryUnmaps(lib);
  mapBudget.assertHeadroom();
  const page = pageSize();
  const total = innerLength + 2 * page;
  const base = lib.map(total);
  if (typeof base === 'number') throw systemError(ErrorCode.ALLOCATION_FAILED, 'mmap', base, total);
  const inner = base + BigInt(page);
  const status = lib.prepare(base, total, inner, innerLength, onFault);
  if (status !== 0) {
    unmapOrDefer(lib, base, total, undefined, false); // unlocks too; nothing was written yet
    throw prepareError(status, innerLength, total);
  }
  mapBudget.added();
  const canary = newCanary();
  return { base, total, inner, innerLength, canary, slack: 0, pinned: false, outstanding: new Map(), entombed: false };
}

/** The error for the failed step of `prepare` (see {@link Addon.prepare}). */
function prepareError(status: number, innerLength: number, total: number): Error {
  const step = Math.floor(status / 65536);
  const errno = status % 65536;
  if (step === 1) return systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, innerLength);
  if (step === 2) return lockError(errno, innerLength);
  return systemError(ErrorCode.PROTECTION_FAILED, 'madvise', errno, total);
}

/**
 * Unmaps a mapping whose inner pages hold nothing secret any more (munmap unlocks them). When munmap
 * fails (false), the inner pages are unlocked, made `PROT_NONE` (best effort) and the munmap is
 * retried later, counted in `ledger.leaked` until then.
 */
export function unmapMapping(lib: Addon, map: Mapping, ledger?: Ledger): boolean {
  // a failed munmap is followed by munlock in the same call: what is left holds nothing locked
  if (lib.release(map.inner, map.innerLength, map.base, map.total) === 0) {
    mapBudget.removed();
    return true;
  }
  deferUnmap(map.base, map.total, ledger, true);
  lib.protect(map.inner, map.innerLength, lib.PROT_NONE); // zeroed already; best effort
  return false;
}
