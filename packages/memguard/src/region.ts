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
 * data holds a random per-buffer canary, checked on destroy. A view this package uses itself is
 * detached when the region is destroyed; a view handed to JavaScript is not: its memory stays a
 * tombstone, wiped and `PROT_NONE`, while V8 holds it, so that a view kept too long faults (see
 * views.ts).
 *
 * A region is either allocated (its own mapping, unmapped on destroy: the LockedBuffer
 * constructors) or leased from the pool (Enclave.open, the enclave-mode factory, Stream): a leased
 * region's mapping goes back to a bounded pool of its size class when it is destroyed, after its
 * canary is checked and its data wiped, so that opening an Enclave costs no mmap or mlock.
 *
 * This module is the region (allocate or lease, protect, views, destroy) and purge; the mapping's
 * system calls are in mapping.ts, the pool in pool.ts, the views and tombstones in views.ts.
 * @module
 */
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { coolAllWarm } from './box-arena.js';
import { BACKEND, destroyed, systemError } from './errors.js';
import { mapBudget } from './map-budget.js';
import { type Addon, addon } from './native.js';
import { innerLengthFor, type Ledger, type Mapping, mapFresh, type Protection, protFlags, unmapMapping } from './mapping.js';
import { pool } from './pool.js';
import { entomb, forceReclaim, GuardedView, keepUntilReleased, newViewToken, reclaimViews, setViewOwner, trackView } from './views.js';

/** Every region not yet destroyed, for {@link purgeRegions}. */
const live = new Set<GuardedRegion>();

/**
 * An external ArrayBuffer over native memory. A runtime that forbids them (Electron's V8 sandbox)
 * makes the addon throw; that is `ERR_BACKEND_UNAVAILABLE` here.
 */
function externalView(lib: Addon, address: bigint, length: number, token: number): ArrayBuffer {
  try {
    return lib.view(address, length, token);
  } catch (cause) {
    throw new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'This runtime does not allow external ArrayBuffers', {
      backend: BACKEND,
      cause,
    });
  }
}

/**
 * As {@link mapFresh}; when the memlock or mapping limit refuses it, gives back the regions enclave-mode
 * secrets keep warm, revokes what tombstones it can and drains the pool once, and tries again.
 */
function mapWithRoom(lib: Addon, innerLength: number, onFault: boolean): Mapping {
  try {
    return mapFresh(lib, innerLength, onFault);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== ErrorCode.MEMLOCK_LIMIT && code !== ErrorCode.MAP_LIMIT) throw error;
    coolAllWarm(); // each becomes a tombstone, revoked just below
    const freed = forceReclaim(lib, 0);
    if (pool.drain() + freed > 0) return mapFresh(lib, innerLength, onFault);
    throw error;
  }
}

/**
 * Gives back the regions enclave-mode secrets keep warm, revokes (detaches) the views of every
 * tombstone that can be, frees those, then unmaps every free mapping of the pool (they hold nothing
 * secret); returns how many mappings of the pool were unmapped.
 */
export function drainPool(): number {
  coolAllWarm();
  forceReclaim(addon(), 0);
  return pool.drain();
}

/**
 * A guarded, locked region holding `size` data bytes. Only this package's LockedBuffers, Enclaves
 * and secrets call it, with arguments they validated.
 */
export class GuardedRegion {
  /** The number of data bytes. */
  readonly size: number;
  /** The address of the first data byte (right-aligned against the trailing guard page). */
  readonly data: bigint;
  readonly #lib: Addon;
  readonly #map: Mapping;
  readonly #ledger: Ledger;
  /** Leased from the pool: its mapping goes back there on destroy. */
  readonly #leased: boolean;
  /** The internal views handed out and not yet detached (made on the first one). */
  #views: Set<ArrayBuffer> | undefined;
  #protection: Protection = 'readwrite';
  #alive = true;

  private constructor(lib: Addon, map: Mapping, size: number, ledger: Ledger, leased: boolean) {
    this.#lib = lib;
    this.#map = map;
    this.size = size;
    this.data = map.inner + BigInt(map.innerLength - size);
    this.#ledger = ledger;
    this.#leased = leased;
    live.add(this);
    ledger.regions += 1;
    ledger.lockedBytes += map.innerLength;
    ledger.mappedBytes += map.total;
  }

  /**
   * Maps, protects, locks and advises a region of `size` data bytes, writes its canary, and leaves
   * the data zeroed and writable. On failure it unmaps what it mapped and leaves everything else as
   * it was.
   * @throws {SecureMemoryError} `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED`, `ERR_MEMLOCK_LIMIT` or `ERR_PROTECTION_FAILED`.
   */
  static allocate(size: number, ledger: Ledger): GuardedRegion {
    const lib = addon();
    reclaimViews(lib);
    const map = mapWithRoom(lib, innerLengthFor(size), false);
    GuardedRegion.#prepareSlack(lib, map, size);
    return new GuardedRegion(lib, map, size, ledger, false);
  }

  /**
   * A region of `size` data bytes whose mapping comes from the pool when one of its size class is
   * free (no mmap, no mlock), else is mapped as {@link allocate} does. The data is zeroed and
   * writable. On destroy the mapping goes back to the pool, wiped.
   * @throws {SecureMemoryError} as {@link allocate}.
   */
  static lease(size: number, ledger: Ledger): GuardedRegion {
    const lib = addon();
    reclaimViews(lib);
    const innerLength = innerLengthFor(size);
    const map = pool.take(innerLength) ?? mapWithRoom(lib, innerLength, true);
    GuardedRegion.#prepareSlack(lib, map, size);
    return new GuardedRegion(lib, map, size, ledger, true);
  }

  /**
   * Makes the slack before `size` data bytes hold the canary pattern, and the data bytes zero (the
   * mapping is writable). A mapping comes back from the pool with its slack intact and its last
   * data wiped, so a lease of the same size writes nothing.
   */
  static #prepareSlack(lib: Addon, map: Mapping, size: number): void {
    const want = map.innerLength - size;
    try {
      if (map.slack < want) lib.canaryFill(map.inner, want, map.canary);
      else if (map.slack > want) lib.wipe(map.inner + BigInt(want), map.slack - want);
    } catch (error) {
      lib.wipe(map.inner, map.innerLength);
      if (!map.pinned) unmapMapping(lib, map);
      throw error;
    }
    map.slack = want;
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
    return this.#map.innerLength;
  }

  /**
   * Changes the protection of the inner pages.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed; `ERR_PROTECTION_FAILED` when mprotect fails.
   */
  protect(protection: Protection): void {
    if (!this.#alive) throw destroyed();
    if (protection === this.#protection) return;
    const map = this.#map;
    const errno = this.#lib.protect(map.inner, map.innerLength, protFlags(this.#lib, protection));
    if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, map.innerLength);
    this.#protection = protection;
  }

  /**
   * A new view of the data: an external ArrayBuffer. An `internal` view (one this package uses and
   * never hands out) is detached by {@link revoke} or {@link destroy}. Any other view is never
   * detached: when the region is destroyed its memory becomes a tombstone (wiped, `PROT_NONE`, never
   * reused) for as long as V8 holds the view's memory, so that a kept view faults.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed.
   */
  view(internal = false): Uint8Array {
    if (!this.#alive) throw destroyed();
    // An internal view is detached by revoke() or destroy(): V8 need not report its release.
    const token = internal ? 0 : newViewToken();
    const buffer = externalView(this.#lib, this.data, this.size, token);
    // Only views handed out are looked up by their buffer (views.ts): an internal one never leaves.
    if (!internal) setViewOwner(buffer, this);
    if (internal) {
      this.#views ??= new Set();
      this.#views.add(buffer);
    } else {
      trackView(token, this.#map, buffer);
    }
    return new GuardedView(buffer);
  }

  /**
   * Ends the use of a view: an internal one is detached (every typed array over it has length 0); any
   * other stays as it is (the caller makes the memory inaccessible, or destroys the region).
   */
  revoke(view: Uint8Array): void {
    this.#detach(view.buffer as ArrayBuffer);
  }

  #detach(buffer: ArrayBuffer): void {
    if (this.#views?.delete(buffer) !== true) return;
    if (this.#lib.detach(buffer) !== 0) this.#map.pinned = true;
  }

  #detachAll(): void {
    if (this.#views === undefined || this.#views.size === 0) return;
    for (const buffer of [...this.#views]) this.#detach(buffer);
  }

  /** Zero-fills the data; the region must be writable. */
  wipeData(): void {
    if (!this.#alive) throw destroyed();
    this.#lib.wipe(this.data, this.size);
  }

  /** True when the canary slack is intact; the inner pages must be readable. */
  #canaryIntact(): boolean {
    const map = this.#map;
    return this.#lib.canaryIntact(map.inner, map.innerLength - this.size, map.canary) === 1;
  }

  /**
   * Wipes the data and makes the region inaccessible, keeping it: for a secret whose plaintext
   * must always come back to the same place (its region was shown to a probe). Detaches every
   * view first. Returns `false` when the canary was damaged.
   * @throws {SecureMemoryError} `ERR_SECRET_CLOSED` when destroyed; `ERR_PROTECTION_FAILED` when mprotect fails.
   */
  scrub(): boolean {
    if (!this.#alive) throw destroyed();
    this.#detachAll();
    this.protect('readwrite');
    const intact = this.#canaryIntact();
    this.#lib.wipe(this.data, this.size);
    this.protect('none');
    return intact;
  }

  /** Marks the region destroyed and takes it off the books. */
  #retire(): void {
    const map = this.#map;
    this.#alive = false;
    live.delete(this);
    const ledger = this.#ledger;
    ledger.regions -= 1;
    ledger.lockedBytes -= map.innerLength;
    ledger.mappedBytes -= map.total;
  }

  /**
   * Detaches every view, checks the canary and wipes. An allocated region (or a leased one that the
   * pool cannot take, or whose canary was damaged) is then wiped whole, unlocked and unmapped; a
   * leased one goes back to the pool with its data wiped. Idempotent. Returns `false` when the
   * canary was damaged (the memory is released all the same). A failed munmap is retried later.
   *
   * When the pages cannot be made writable to be wiped (mprotect failed), they are unmapped as they
   * are, unwiped: the kernel drops them (locked anonymous pages are never written to swap), and no
   * readable plaintext stays in the process. Then it throws.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when mprotect failed: the region was unmapped
   * without the wipe and is destroyed; or, if munmap failed too, it stays alive (without views,
   * still listed for purge) and may be destroyed again.
   */
  destroy(): boolean {
    if (!this.#alive) return true;
    this.#detachAll();
    try {
      this.protect('readwrite');
    } catch (error) {
      this.#discard();
      throw error;
    }
    const map = this.#map;
    const lib = this.#lib;
    const ledger = this.#ledger;
    const viewed = map.outstanding.size > 0;
    // An allocated region without views is wiped whole and unmapped below, whatever the canary
    // says: check it and wipe in one call.
    const wipedWhole = !this.#leased && !viewed;
    const intact = wipedWhole
      ? lib.canaryCheckWipe(map.inner, map.innerLength - this.size, map.canary, map.inner, map.innerLength) === 1
      : this.#canaryIntact();
    this.#retire();
    if (this.#leased && intact && !map.pinned && !viewed && pool.accepts(map.innerLength)) {
      lib.wipe(this.data, this.size);
      pool.give(map);
      return intact;
    }
    if (viewed && !map.pinned) {
      map.fromLease = this.#leased && intact;
      const errno = entomb(lib, map);
      // Wiped and kept, but a kept view would read zeros instead of faulting: say so.
      if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, map.innerLength);
      return intact;
    }
    if (!wipedWhole) lib.wipe(map.inner, map.innerLength);
    if (this.#leased) pool.stats.discarded += 1;
    if (map.pinned) {
      // A view could not be detached (never seen on Node; possible in a runtime that refuses to
      // detach external buffers): the zeroed pages stay mapped and readable rather than fault.
      ledger.leaked += 1;
      return intact;
    }
    unmapMapping(lib, map, ledger);
    return intact;
  }

  /**
   * The pages could not be made writable to be wiped: unmaps them as they are (munmap unlocks too).
   * A view that could not be detached pins them: then, as when munmap fails, the region stays alive.
   */
  #discard(): void {
    const map = this.#map;
    if (map.pinned) return;
    if (map.outstanding.size > 0) {
      // A view kept past its access must never reach reused memory: the mapping stays, inaccessible,
      // until V8 releases the views (then it is unmapped, as a tombstone is).
      if (this.#lib.protect(map.inner, map.innerLength, this.#lib.PROT_NONE) !== 0) return;
      keepUntilReleased(map);
      this.#retire();
      if (this.#leased) pool.stats.discarded += 1;
      return;
    }
    if (this.#lib.unmap(map.base, map.total) !== 0) return;
    mapBudget.removed();
    this.#retire();
    if (this.#leased) pool.stats.discarded += 1;
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

/**
 * Destroys every live region of the process (LockedBuffers and secrets alike), then drains the pool
 * and retries failed munmaps.
 */
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
  pool.drain();
  return outcome;
}
