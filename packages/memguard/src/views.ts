/**
 * The views this package hands to JavaScript: recognising them (without reading `.buffer` of a
 * caller's small array), and the tombstones they leave: a mapping destroyed while a view of it is
 * still held by V8 stays mapped, wiped and `PROT_NONE` until V8 releases the view.
 * @module
 */
import { destroyed, frozen } from './errors.js';
import type { Addon } from './native.js';
import { type Mapping, unmapMapping } from './mapping.js';
import { pool } from './pool.js';
import type { GuardedRegion } from './region.js';

/** The region each view's ArrayBuffer points into. */
const owners = new WeakMap<ArrayBuffer, GuardedRegion>();

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

/** A source the caller hands over to be wiped must be writable, or wiping it would fault. */
export function assertWipeable(source: Uint8Array, label: string): void {
  if (!writable(source)) throw frozen(`The "${label}" argument`);
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
 * released; beyond {@link MAX_TOMBSTONES}, revokes the oldest. Returns the errno of a failed mprotect
 * (the pages are wiped and kept all the same).
 */
export function entomb(lib: Addon, map: Mapping): number {
  // The data after the canary slack (the canary is not secret, and stays for the next lease).
  lib.wipe(map.inner + BigInt(map.slack), map.innerLength - map.slack);
  const errno = lib.protect(map.inner, map.innerLength, lib.PROT_NONE);
  keepUntilReleased(map);
  if (tombstones.size > MAX_TOMBSTONES) forceReclaim(lib, MAX_TOMBSTONES);
  return errno;
}

/** Keeps a mapping (inaccessible already) as a tombstone until V8 releases its views. */
export function keepUntilReleased(map: Mapping): void {
  map.entombed = true;
  tombstones.add(map);
}

/** A fresh token for a view: the addon reports the view's release by it. */
export function newViewToken(): number {
  const token = nextToken;
  nextToken += 1;
  return token;
}

/**
 * Records a view handed out over `map` (not an internal one): the mapping is never reused nor
 * unmapped until V8 releases it.
 */
export function trackView(token: number, map: Mapping, buffer: ArrayBuffer): void {
  map.outstanding.set(token, new WeakRef(buffer));
  viewMappings.set(token, map);
}

/** Records the region an external ArrayBuffer of ours points into. */
export function setViewOwner(buffer: ArrayBuffer, region: GuardedRegion): void {
  owners.set(buffer, region);
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
