/**
 * Where the sealed boxes of enclave-mode secrets rest: packed into shared slabs, one size class per
 * box length, instead of a Buffer, a box object and a record per secret. A million live 32-byte
 * secrets used to cost about 1 kB of resident memory each, most of it in those objects (see
 * `rssBytesPerSecret` of `secure-memory bench`).
 *
 * A slab is one ordinary ArrayBuffer (ciphertext is not secret) of `slots` boxes of one length, with
 * each slot's container id and key epoch in typed arrays beside it, and a weak reference to the
 * secret that owns the slot. That reference is what a purge closes every open secret through, and
 * what lets a slot of a secret collected without `close()` be used again: a class that runs out of
 * free slots first sweeps its slabs for slots whose owner is gone (amortised: only after as many
 * new slots as there were live ones at the last sweep). A freed slot is zero-filled. A class keeps
 * at most one empty slab.
 * @module
 */
import type { Secret } from '@secure-memory/core';
import type { Sealed } from './key.js';
import type { Ledger } from './mapping.js';

/** Bytes of ciphertext a slab holds at most (a single box larger than that gets a slab of its own). */
const SLAB_BYTES = 64 * 1024;

/** The owner of a slot: its secret (weakly), `null` while the secret is being made, `undefined` when free. */
type Owner = WeakRef<Secret> | null | undefined;

/** One slab: `slots` boxes of `boxLength` bytes. */
export class BoxSlab {
  readonly arena: BoxArena;
  readonly boxLength: number;
  readonly slots: number;
  readonly bytes: Uint8Array;
  readonly ids: Float64Array;
  readonly epochs: Float64Array;
  readonly owners: Owner[];
  /** Free slot numbers (a stack). */
  readonly free: number[] = [];
  used = 0;

  constructor(arena: BoxArena, boxLength: number) {
    this.arena = arena;
    this.boxLength = boxLength;
    const slots = Math.max(1, Math.floor(SLAB_BYTES / boxLength));
    this.slots = slots;
    this.bytes = new Uint8Array(slots * boxLength);
    this.ids = new Float64Array(slots);
    this.epochs = new Float64Array(slots);
    this.owners = new Array<Owner>(slots).fill(undefined);
    for (let slot = slots - 1; slot >= 0; slot -= 1) this.free.push(slot);
  }

  /** The box of `slot`, a view made for this call only. */
  box(slot: number): Uint8Array {
    const start = slot * this.boxLength;
    return this.bytes.subarray(start, start + this.boxLength);
  }

  /** The sealed box of `slot`, as `openInto` and `isCurrent` take it (made for this call only). */
  sealed(slot: number): Sealed {
    return { box: this.box(slot), size: this.boxLength - this.arena.overhead, epoch: this.epochs[slot] as number, id: this.ids[slot] as number };
  }
}

/** A size class: its slabs, those with a free slot, and the sweep's bookkeeping. */
interface SizeClass {
  readonly slabs: Set<BoxSlab>;
  readonly withRoom: Set<BoxSlab>;
  /** Slots taken since the last sweep, and the slots in use after it. */
  takenSinceSweep: number;
  liveAtSweep: number;
  /** The one empty slab the class keeps, if any. */
  empty: BoxSlab | undefined;
}

/** Every arena of this thread (weakly: an arena lives while its factory or one of its secrets does), for a purge. */
const arenas = new Set<WeakRef<BoxArena>>();
/** The size of {@link arenas} at which the next arena made first drops those collected. */
let pruneArenasAt = 64;

/** The most idle secrets of one factory that keep the region of their last access (see {@link WarmRegions}). */
export const WARM_MAX = 8;
/** The largest region (inner pages, in bytes) an idle secret keeps. */
export const WARM_MAX_BYTES = 16 * 1024;

/** A secret's region that can be given back (wiped already, inaccessible). */
interface Warm {
  cool(): void;
}

/**
 * The idle secrets of one factory that keep the region of their last access, wiped and `PROT_NONE`,
 * most recently used last: opening one again decrypts into that region and hands out the same view,
 * instead of leasing a region and making an external ArrayBuffer for every access (whose view, still
 * held by V8, keeps the region from going back to the pool until a garbage collection). Beyond
 * {@link WARM_MAX} the oldest gives its region back. A secret in an access is not listed, so it is
 * never the one to go.
 */
class WarmRegions {
  readonly #idle = new Set<Warm>();

  /** True when a region of `innerLength` bytes may be kept. */
  admits(innerLength: number): boolean {
    return innerLength <= WARM_MAX_BYTES;
  }

  /** Lists `region` as the most recently used; the oldest beyond {@link WARM_MAX} cools. */
  add(region: Warm): void {
    this.#idle.delete(region);
    this.#idle.add(region);
    if (this.#idle.size <= WARM_MAX) return;
    const oldest = this.#idle.values().next().value as Warm;
    this.#idle.delete(oldest);
    oldest.cool();
  }

  delete(region: Warm): void {
    this.#idle.delete(region);
  }

  /** Gives every kept region back; returns how many. */
  coolAll(): number {
    const all = [...this.#idle];
    this.#idle.clear();
    for (const region of all) region.cool();
    return all.length;
  }
}

/** The boxes of one enclave-mode factory. */
export class BoxArena {
  /** Bytes a box adds to its plaintext (nonce and tag). */
  readonly overhead: number;
  /** The factory's ledger, which counts the regions its secrets' accesses lease. */
  readonly ledger: Ledger;
  /** The idle secrets that keep their last access's region. */
  readonly warm = new WarmRegions();
  /** Bytes of the boxes in use (what `ciphertextBytes` reports). */
  ciphertextBytes = 0;
  readonly #classes = new Map<number, SizeClass>();

  constructor(overhead: number, ledger: Ledger) {
    this.overhead = overhead;
    this.ledger = ledger;
    if (arenas.size >= pruneArenasAt) {
      for (const ref of arenas) if (ref.deref() === undefined) arenas.delete(ref);
      pruneArenasAt = Math.max(64, arenas.size * 2);
    }
    arenas.add(new WeakRef(this));
  }

  /**
   * A free slot for a box of `boxLength` bytes (zero-filled), marked taken with no owner yet: the
   * caller seals into {@link BoxSlab.box} and then sets the owner with {@link setOwner}, or gives
   * the slot back with {@link release}.
   */
  take(boxLength: number): { slab: BoxSlab; slot: number } {
    let cls = this.#classes.get(boxLength);
    if (cls === undefined) {
      cls = { slabs: new Set(), withRoom: new Set(), takenSinceSweep: 0, liveAtSweep: 0, empty: undefined };
      this.#classes.set(boxLength, cls);
    }
    if (cls.withRoom.size === 0 && cls.takenSinceSweep > cls.liveAtSweep) this.#sweep(cls);
    let slab: BoxSlab | undefined = cls.withRoom.values().next().value;
    if (slab === undefined) {
      slab = new BoxSlab(this, boxLength);
      cls.slabs.add(slab);
      cls.withRoom.add(slab);
    }
    const slot = slab.free.pop() as number;
    if (slab.free.length === 0) cls.withRoom.delete(slab);
    if (cls.empty === slab) cls.empty = undefined;
    slab.owners[slot] = null;
    slab.used += 1;
    cls.takenSinceSweep += 1;
    this.ciphertextBytes += boxLength;
    return { slab, slot };
  }

  /** Records the secret that owns a slot. */
  setOwner(slab: BoxSlab, slot: number, owner: Secret): void {
    slab.owners[slot] = new WeakRef(owner);
  }

  /** Zero-fills a slot and makes it free; keeps at most one empty slab per class. */
  release(slab: BoxSlab, slot: number): void {
    if (slab.owners[slot] === undefined) return;
    slab.bytes.fill(0, slot * slab.boxLength, (slot + 1) * slab.boxLength);
    slab.owners[slot] = undefined;
    slab.free.push(slot);
    slab.used -= 1;
    this.ciphertextBytes -= slab.boxLength;
    const cls = this.#classes.get(slab.boxLength) as SizeClass;
    if (slab.used === 0 && cls.empty !== undefined && cls.empty !== slab) {
      // the class keeps one empty slab already: this one goes
      cls.slabs.delete(slab);
      cls.withRoom.delete(slab);
      return;
    }
    if (slab.used === 0) cls.empty = slab;
    cls.withRoom.add(slab);
  }

  /** Frees the slots whose secret was collected without `close()`. */
  #sweep(cls: SizeClass): void {
    let live = 0;
    for (const slab of [...cls.slabs]) {
      const owners = slab.owners;
      for (let slot = 0; slot < slab.slots; slot += 1) {
        const owner = owners[slot];
        if (owner instanceof WeakRef && owner.deref() === undefined) this.release(slab, slot);
      }
      live += slab.used;
    }
    cls.takenSinceSweep = 0;
    cls.liveAtSweep = live;
  }

  /** The secrets of this arena still reachable and owning a slot. */
  *owners(): Generator<Secret> {
    for (const cls of this.#classes.values()) {
      for (const slab of cls.slabs) {
        for (const owner of slab.owners) {
          const secret = owner instanceof WeakRef ? owner.deref() : undefined;
          if (secret !== undefined) yield secret;
        }
      }
    }
  }
}

/**
 * Gives back the regions every factory of this thread keeps warm (when the memlock or mapping limit
 * refuses a new mapping, region.ts); returns how many.
 */
export function coolAllWarm(): number {
  let cooled = 0;
  for (const ref of arenas) cooled += ref.deref()?.warm.coolAll() ?? 0;
  return cooled;
}

/** The secrets owning a slot in any arena of this thread (for a purge, which closes them). */
export function arenaSecrets(): Secret[] {
  const found: Secret[] = [];
  for (const ref of [...arenas]) {
    const arena = ref.deref();
    if (arena === undefined) {
      arenas.delete(ref);
      continue;
    }
    for (const secret of arena.owners()) found.push(secret);
  }
  return found;
}
