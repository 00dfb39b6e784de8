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
 *
 * A region is either allocated (its own mapping, unmapped on destroy: the LockedBuffer
 * constructors) or leased from the pool (Enclave.open, the enclave-mode factory, Stream): a leased
 * region's mapping goes back to a bounded pool of its size class when it is destroyed, after its
 * canary is checked and its data wiped, so that opening an Enclave costs no mmap or mlock.
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { BACKEND, destroyed, lockError, systemError } from './errors.js';
import { mapBudget } from './map-budget.js';
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
  pendingUnmaps.push({ base, total, ledger, counted });
  if (ledger !== undefined) ledger.leaked += 1;
  return false;
}

/** Tries every deferred munmap again; returns how many are still pending. */
function retryUnmaps(lib: Addon): number {
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

/**
 * V8 keeps the bytes of a typed array of at most this many bytes inside the array's heap object
 * (`--typed-array-max-size-in-heap`). Reading `.buffer` of such an array (or `subarray`, which reads
 * it) moves the bytes off the heap and abandons the old copy, unwiped. Larger arrays, and every
 * view of an ArrayBuffer, never have their bytes on the heap.
 */
export const V8_ON_HEAP_MAX = 64;

/**
 * The class of the views this package hands out. A `subarray()` of one (and anything else made
 * through `Symbol.species` over the same memory) is one too and is known as ours without reading its
 * `.buffer`; `slice()`, `map()`... copy to the heap and are not ours.
 */
export class GuardedView extends Uint8Array {
  /** True when this view is over one of our regions' memory. */
  readonly #ours: boolean;

  constructor(...args: unknown[]) {
    super(...(args as [ArrayBuffer, number?, number?]));
    const first = args[0];
    this.#ours = first instanceof ArrayBuffer && owners.has(first);
  }

  /** True for a view over one of our regions' memory (never an on-heap array). */
  static isOurs(bytes: Uint8Array): boolean {
    return #ours in bytes && bytes.#ours;
  }
}

/**
 * The region a view points into, if it is one of ours and not yet revoked. Never reads `.buffer` of
 * an array whose bytes may still be on the V8 heap (a caller's small source): it reads it only for
 * our own views and for arrays too large to be on the heap. A view over our memory made from its
 * `.buffer` by hand (`new Uint8Array(view.buffer, 0, 32)`) is not recognised when it is 64 bytes or
 * shorter.
 */
function ownerOf(bytes: Uint8Array): GuardedRegion | undefined {
  if (!GuardedView.isOurs(bytes) && bytes.byteLength <= V8_ON_HEAP_MAX) return undefined;
  return owners.get(bytes.buffer as ArrayBuffer);
}

/** True when `bytes` may be written: not a view of one of our regions that is read-only, inaccessible or destroyed now. */
export function writable(bytes: Uint8Array): boolean {
  const owner = ownerOf(bytes);
  return owner === undefined || (owner.alive && owner.protection === 'readwrite');
}

/**
 * Asserts that `bytes` may be read: not a view of one of our regions that was destroyed (a tombstone)
 * or is inaccessible now, which would fault.
 * @throws {SecureMemoryError} `ERR_SECRET_CLOSED`.
 */
export function assertReadable(bytes: Uint8Array): void {
  const owner = ownerOf(bytes);
  if (owner !== undefined && (!owner.alive || owner.protection === 'none')) throw destroyed();
}

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

function protFlags(lib: Addon, protection: Protection): number {
  if (protection === 'none') return lib.PROT_NONE;
  return protection === 'read' ? lib.PROT_READ : lib.PROT_READ | lib.PROT_WRITE;
}

/** The inner pages a region of `size` data bytes needs: the data plus at least {@link MIN_CANARY} bytes. */
function innerLengthFor(size: number): number {
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
  try {
    let errno = lib.protect(inner, innerLength, lib.PROT_READ | lib.PROT_WRITE);
    if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, innerLength);
    errno = onFault ? lib.lockOnFault(inner, innerLength) : lib.lock(inner, innerLength);
    if (errno !== 0) throw lockError(errno, innerLength);
    errno = lib.advise(base, total, lib.MADV_DONTDUMP);
    if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'madvise', errno, total);
    errno = lib.advise(base, total, lib.MADV_WIPEONFORK);
    if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'madvise', errno, total);
  } catch (error) {
    unmapOrDefer(lib, base, total, undefined, false); // unlocks too; nothing was written yet
    throw error;
  }
  mapBudget.added();
  const canary = new Uint8Array(new ArrayBuffer(CANARY_PATTERN));
  randomFillSync(canary);
  return { base, total, inner, innerLength, canary, slack: 0, pinned: false, outstanding: new Map(), entombed: false };
}

/**
 * As {@link mapFresh}; when the memlock or mapping limit refuses it, revokes what tombstones it can
 * and drains the pool once, and tries again.
 */
function mapWithRoom(lib: Addon, innerLength: number, onFault: boolean): Mapping {
  try {
    return mapFresh(lib, innerLength, onFault);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== ErrorCode.MEMLOCK_LIMIT && code !== ErrorCode.MAP_LIMIT) throw error;
    const freed = forceReclaim(lib, 0);
    if (pool.drain() + freed > 0) return mapFresh(lib, innerLength, onFault);
    throw error;
  }
}

// --- Views and tombstones ------------------------------------------------------------------------
//
// A view handed to JavaScript (LockedBuffer.bytes(), a secret's access) is never detached: a
// detached view has byteLength 0, and node:crypto takes it as an empty key without a word
// (createHmac, hkdfSync, pbkdf2Sync). Instead its memory stays mapped, wiped and PROT_NONE, and is
// never reused while V8 holds the view's backing store (which ArrayBuffer.prototype.transfer() moves
// to another ArrayBuffer without releasing it): a view used after its access faults (SIGSEGV), and
// never reads another secret. The addon reports each backing store V8 releases (releasedViews());
// then the mapping goes back to the pool, or is unmapped.
//
// Views are released only after a garbage collection, and never during one synchronous run of
// JavaScript: a loop that accesses secrets would pile up tombstones. Beyond MAX_TOMBSTONES (and when
// the memlock or mapping limit refuses a mapping), the oldest tombstones whose views are all still
// reachable and in place are revoked the old way (detached: byteLength 0) and reused; a tombstone
// whose view was moved by transfer() or is collected but not yet released is never forced. The
// first forced revocation emits a warning.

/** Tombstones kept before the oldest are revoked by detaching (see above). */
const MAX_TOMBSTONES = 64;
/** The `code` of the warning emitted the first time kept views were revoked by detaching. */
const VIEWS_DETACHED_WARNING = 'MEMGUARD_VIEWS_DETACHED';

let nextToken = 1;
/** The mapping of every outstanding view, by token. */
const viewMappings = new Map<number, Mapping>();
/** Mappings destroyed while views were outstanding, oldest first. */
const tombstones = new Set<Mapping>();
let warnedDetached = false;

/**
 * Wipes a mapping's inner pages and makes them PROT_NONE, keeping them (locked) until its views are
 * released. Returns the errno of a failed mprotect (the pages are wiped and kept all the same).
 */
function entomb(lib: Addon, map: Mapping): number {
  // The data after the canary slack (the canary is not secret, and stays for the next lease).
  lib.wipe(map.inner + BigInt(map.slack), map.innerLength - map.slack);
  const errno = lib.protect(map.inner, map.innerLength, lib.PROT_NONE);
  map.entombed = true;
  tombstones.add(map);
  return errno;
}

/**
 * A tombstone whose views are all released: unmapped, or (`repool`: a forced revocation, in a busy
 * synchronous loop where the pool matters) back to the pool, writable and wiped.
 */
function release(lib: Addon, map: Mapping, repool: boolean): void {
  tombstones.delete(map);
  map.entombed = false;
  if (repool && pool.accepts(map.innerLength) && lib.protect(map.inner, map.innerLength, lib.PROT_READ | lib.PROT_WRITE) === 0) {
    pool.give(map);
    return;
  }
  unmapMapping(lib, map);
}

/** Takes the views V8 released off their mappings; frees the tombstones left without any. */
export function reclaimViews(lib: Addon): void {
  if (viewMappings.size === 0) return;
  for (const token of lib.releasedViews()) {
    const map = viewMappings.get(token);
    if (map === undefined) continue;
    viewMappings.delete(token);
    map.outstanding.delete(token);
    // A leased region's mapping goes back to the pool (as it would have without a kept view), so the
    // pool's size does not depend on when V8 released a view.
    if (map.entombed && map.outstanding.size === 0) release(lib, map, map.fromLease === true);
  }
}

/**
 * Revokes, by detaching, the views of the oldest tombstones until no more than `keep` are left, and
 * frees those tombstones. Skips a tombstone with a view that was moved away (transfer()) or is
 * collected but not yet released: its memory may still be reachable. Returns how many were freed.
 */
export function forceReclaim(lib: Addon, keep: number): number {
  reclaimViews(lib);
  let freed = 0;
  for (const map of [...tombstones]) {
    if (tombstones.size <= keep) break;
    const buffers: ArrayBuffer[] = [];
    for (const ref of map.outstanding.values()) {
      const buffer = ref.deref();
      if (buffer === undefined || buffer.byteLength === 0) break;
      buffers.push(buffer);
    }
    if (buffers.length !== map.outstanding.size) continue;
    if (!buffers.every((buffer) => lib.detach(buffer) === 0)) continue;
    for (const token of map.outstanding.keys()) viewMappings.delete(token);
    map.outstanding.clear();
    release(lib, map, true);
    freed += 1;
  }
  if (freed > 0 && !warnedDetached) {
    warnedDetached = true;
    process.emitWarning(
      `${freed} view(s) of released secret memory were revoked by detaching (byteLength 0): more than ${MAX_TOMBSTONES} views outlived their access before a garbage collection`,
      { type: 'SecureMemoryWarning', code: VIEWS_DETACHED_WARNING },
    );
  }
  return freed;
}

/** Tombstones waiting for their views (for the stats). */
export function tombstoneCount(): number {
  return tombstones.size;
}

/**
 * Unlocks and unmaps a mapping whose inner pages hold nothing secret any more. When munmap fails
 * (false), the pages are made `PROT_NONE` (best effort) and the munmap is retried later, counted
 * in `ledger.leaked` until then. A failed munlock is ignored: munmap unlocks too.
 */
export function unmapMapping(lib: Addon, map: Mapping, ledger?: Ledger): boolean {
  lib.unlock(map.inner, map.innerLength); // first, so that a failed munmap leaves nothing locked
  if (unmapOrDefer(lib, map.base, map.total, ledger, true)) return true;
  lib.protect(map.inner, map.innerLength, lib.PROT_NONE); // zeroed already; best effort
  return false;
}

/** Free mappings a size class may keep. */
export const POOL_MAX_PER_CLASS = 16;
/** Locked bytes the pool may keep in free mappings, over every size class. */
export const POOL_MAX_BYTES = 4 * 1024 * 1024;

/** Counters of the pool of guarded mappings that leased regions return to. */
export interface PoolStats {
  /** Free mappings kept, ready to be leased. */
  free: number;
  /** Bytes locked by the free mappings (their inner pages). */
  freeLockedBytes: number;
  /** Leases served by a free mapping (no mmap, no mlock). */
  hits: number;
  /** Leases that had to map a new mapping. */
  misses: number;
  /** Mappings given back to the pool, wiped. */
  returned: number;
  /** Mappings unmapped instead of kept: the pool was full, the canary was damaged, or it was drained. */
  discarded: number;
  /**
   * Mappings of the whole process (buffers, secrets, the pool, the key state) whose munmap failed:
   * wiped, `PROT_NONE`, unlocked, and unmapped again at the next allocation, drain or purge.
   * Normally 0.
   */
  pendingUnmaps: number;
}

/**
 * The pool: free mappings by size class (inner length), wiped (zero data, canary slack intact),
 * locked, read-write (nothing secret is in them), between their guard pages. Bounded by
 * {@link POOL_MAX_PER_CLASS} and {@link POOL_MAX_BYTES}; drained by purge, at exit, and whenever
 * a new mapping is refused by RLIMIT_MEMLOCK or the mapping limit.
 */
class Pool {
  readonly #free = new Map<number, Mapping[]>();
  readonly stats: Omit<PoolStats, 'pendingUnmaps'> = { free: 0, freeLockedBytes: 0, hits: 0, misses: 0, returned: 0, discarded: 0 };

  take(innerLength: number): Mapping | undefined {
    const map = this.#free.get(innerLength)?.pop();
    if (map === undefined) {
      this.stats.misses += 1;
      return undefined;
    }
    this.stats.hits += 1;
    this.stats.free -= 1;
    this.stats.freeLockedBytes -= innerLength;
    return map;
  }

  accepts(innerLength: number): boolean {
    return (
      (this.#free.get(innerLength)?.length ?? 0) < POOL_MAX_PER_CLASS &&
      this.stats.freeLockedBytes + innerLength <= POOL_MAX_BYTES
    );
  }

  give(map: Mapping): void {
    let list = this.#free.get(map.innerLength);
    if (list === undefined) {
      list = [];
      this.#free.set(map.innerLength, list);
    }
    list.push(map);
    this.stats.free += 1;
    this.stats.freeLockedBytes += map.innerLength;
    this.stats.returned += 1;
  }

  /** Unmaps every free mapping (and retries failed munmaps); returns how many. */
  drain(): number {
    if (pendingUnmaps.length > 0) retryUnmaps(addon());
    if (this.stats.free === 0) return 0;
    const lib = addon();
    let count = 0;
    for (const list of this.#free.values()) {
      for (const map of list.splice(0)) {
        unmapMapping(lib, map);
        count += 1;
      }
    }
    this.stats.free = 0;
    this.stats.freeLockedBytes = 0;
    this.stats.discarded += count;
    return count;
  }
}

const pool = new Pool();

/** The pool's counters. */
export function poolStats(): PoolStats {
  return { ...pool.stats, pendingUnmaps: pendingUnmaps.length };
}

/**
 * Revokes (detaches) the views of every tombstone that can be, frees those, then unmaps every free
 * mapping of the pool (they hold nothing secret); returns how many mappings of the pool were unmapped.
 */
export function drainPool(): number {
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
    const token = nextToken;
    nextToken += 1;
    const buffer = externalView(this.#lib, this.data, this.size, token);
    owners.set(buffer, this);
    if (internal) {
      this.#views ??= new Set();
      this.#views.add(buffer);
    } else {
      this.#map.outstanding.set(token, new WeakRef(buffer));
      viewMappings.set(token, this.#map);
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
    const intact = this.#canaryIntact();
    const map = this.#map;
    const lib = this.#lib;
    const ledger = this.#ledger;
    this.#retire();
    const viewed = map.outstanding.size > 0;
    if (this.#leased && intact && !map.pinned && !viewed && pool.accepts(map.innerLength)) {
      lib.wipe(this.data, this.size);
      pool.give(map);
      return intact;
    }
    if (viewed && !map.pinned) {
      map.fromLease = this.#leased && intact;
      const errno = entomb(lib, map);
      if (tombstones.size > MAX_TOMBSTONES) forceReclaim(lib, MAX_TOMBSTONES);
      // Wiped and kept, but a kept view would read zeros instead of faulting: say so.
      if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', errno, map.innerLength);
      return intact;
    }
    lib.wipe(map.inner, map.innerLength);
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
      map.entombed = true;
      tombstones.add(map);
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
