/**
 * Slab packing: small secrets share locked, no-dump, fork-safe mappings ("slabs") in size classes,
 * so that neither locked memory nor mappings grow by a page per secret. Each slot is an 8-byte
 * canary followed by the data; a slot never straddles a page. A page is `PROT_NONE` unless one of
 * its secrets is being accessed: the page keeps a count of open accesses, and while it is above
 * zero **every** secret on that page is readable. Larger secrets get a slab of their own (one slot,
 * with its canary, in a page-rounded mapping). This file: the allocator of a factory's slabs and
 * the region of one slot; one slab is slab-slots.ts.
 * @module
 */
import { ErrorCode, SecureMemoryError, isSecureMemoryError } from '@secure-memory/core';
import type { RegionLocation, SecretRegion } from '@secure-memory/core/backend';
import { BACKEND, systemError } from './errors.js';
import { type Libc, MADV_RANDOM, PROT_NONE } from './libc.js';
import { mapBudget } from './map-budget.js';
import { type Mapping, ViewRegion } from './region.js';
import { CANARY_BYTES, MAX_SLAB_BYTES, SLOT_STRIDES, SIZE_CLASSES, Slab, sizeClassOf } from './slab-slots.js';

export { CANARY_BYTES, MAX_SLAB_BYTES, SIZE_CLASSES, SLOT_STRIDES } from './slab-slots.js';

/** What the allocator needs from its factory: mappings made and released by the factory's policy. */
export interface SlabHost {
  readonly lib: Libc;
  /** Maps `length` bytes, locked and advised per the factory's policy (and map headroom); releases what it took when it throws. */
  map(length: number): Mapping;
  /** Unmaps (which unlocks; or defers the unmap of) a mapping from {@link SlabHost.map}. */
  release(mapping: Mapping): void;
  /** Replaces a wiped mapping by an inaccessible, unlocked, empty reservation of its addresses. */
  retire(mapping: Mapping): void;
}

/** The counters of slab packing, added to the mapping counters in `stats()`. */
export interface SlabStats {
  [counter: string]: number;
  /** Slots in use in shared slabs: live secrets of up to 2040 bytes, plus `pendingWipes`. */
  slots: number;
  /** Shared slabs mapped (each one mapping). */
  slabs: number;
  /** Freed slots whose wipe failed (`mprotect` refused) and is retried before the next allocation or close. */
  pendingWipes: number;
  /** Slots of closed secrets in shared slabs, wiped, kept from reuse while a view of them may be reachable (not counted in `slots`). */
  retiredSlots: number;
}

/**
 * Makes each page of a shared slab a mapping (VMA) of its own: every other page, by address, is
 * advised MADV_RANDOM, and two VMAs whose flags differ never merge. An access changes the
 * protection of one page; in a slab that is one VMA, that splits it in three at `PROT_READ` and
 * merges it back at `PROT_NONE`, which took the mprotect pair from 2.8 to 6.5 µs on the bench
 * machine (the floor, one page that is a VMA of its own, is 2.8 µs). The pages count against the
 * map budget; when the budget or the kernel refuses, the slab stays one VMA (slower, as safe).
 */
function separatePages(lib: Libc, address: bigint, length: number): void {
  const page = lib.pageSize;
  const pages = length / page;
  if (pages < 2) return;
  try {
    for (let i = 1; i < pages; i += 1) mapBudget.assertHeadroom();
  } catch (error) {
    if (isSecureMemoryError(error, ErrorCode.MAP_LIMIT)) return;
    throw error;
  }
  const first = Number((address / BigInt(page)) % 2n);
  for (let i = 1 - first; i < pages; i += 2) lib.madvise(address + BigInt(i * page), page, MADV_RANDOM); // best effort: speed only
}

/** The secrets of one factory's slabs, by size class. */
export class SlabAllocator {
  readonly #host: SlabHost;
  /** Per size class, the slabs with a free slot, oldest first. */
  readonly #open: Set<Slab>[] = SIZE_CLASSES.map(() => new Set<Slab>());
  /** Per size class, the slabs mapped. */
  readonly #count: number[] = SIZE_CLASSES.map(() => 0);
  /** Every slab mapped, shared or of one large secret. */
  readonly #slabs = new Set<Slab>();
  /** Freed slots that could not be wiped yet. */
  readonly #pendingWipes = new Map<Slab, Set<number>>();
  /** Slabs with groups whose protection could not be set back. */
  readonly #unsettled = new Set<Slab>();
  /** Wiped slots kept from reuse (see {@link SlotRegion.retire}). */
  retired = 0;

  constructor(host: SlabHost) {
    this.#host = host;
  }

  #newSlab(sizeClass: number | undefined, size: number): Slab {
    const { lib } = this.#host;
    const page = lib.pageSize;
    let length: number;
    let stride: number;
    if (sizeClass === undefined) {
      stride = size + CANARY_BYTES;
      length = Math.ceil(stride / page) * page;
    } else {
      stride = SLOT_STRIDES[sizeClass] as number;
      const maxPages = Math.max(1, Math.floor(MAX_SLAB_BYTES / page));
      length = Math.min(maxPages, 2 ** Math.min(16, this.#count[sizeClass] as number)) * page;
    }
    let mapping: Mapping | undefined;
    while (mapping === undefined) {
      try {
        mapping = this.#host.map(length);
      } catch (error) {
        // Under a tight limit, a smaller slab may still fit (lengths are powers of two pages).
        if (sizeClass === undefined || length <= page || !isSecureMemoryError(error, ErrorCode.MEMLOCK_LIMIT)) throw error;
        length /= 2;
      }
    }
    if (lib.mprotect(mapping.address, length, PROT_NONE) !== 0) {
      const error = systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', lib.errno(), length);
      this.#host.release(mapping);
      throw error;
    }
    if (sizeClass !== undefined) separatePages(lib, mapping.address, length);
    const slab = new Slab(lib, mapping, sizeClass, stride, sizeClass === undefined ? length : page);
    this.#slabs.add(slab);
    if (sizeClass !== undefined) {
      this.#count[sizeClass] = (this.#count[sizeClass] as number) + 1;
      this.#open[sizeClass]?.add(slab);
    }
    return slab;
  }

  /**
   * Shared slabs that became empty during this turn of the event loop: kept mapped (and open) until
   * the turn ends, so that a new secret of the same class right after a close reuses the slab instead
   * of mapping, locking and advising a new one; unmapped at the next turn, or before stats are read.
   */
  readonly #parked = new Set<Slab>();
  #flushScheduled = false;

  /** Unmaps the parked slabs that are still empty. */
  flush(): void {
    for (const slab of this.#parked) {
      this.#parked.delete(slab);
      if (slab.used === 0 && this.#slabs.has(slab)) this.#unmapEmpty(slab);
    }
  }

  #unmapEmpty(slab: Slab): void {
    slab.reserved = false;
    this.#slabs.delete(slab);
    this.#unsettled.delete(slab);
    if (slab.sizeClass !== undefined) {
      this.#open[slab.sizeClass]?.delete(slab);
      this.#count[slab.sizeClass] = (this.#count[slab.sizeClass] as number) - 1;
    }
    this.#host.release(slab.mapping); // the slots are all zero: munmap (which unlocks)
  }

  /** Returns a slot; unmaps the slab when it is empty (a shared slab at the end of this turn: see {@link flush}). */
  #giveBack(slab: Slab, slot: number): void {
    slab.giveBack(slot);
    if (slab.used === 0 && slab.sizeClass !== undefined && !slab.reserved && slab.stale.size === 0) {
      this.#parked.add(slab);
      this.#open[slab.sizeClass]?.add(slab);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          this.flush();
        }).unref();
      }
      return;
    }
    if (slab.used === 0) {
      this.#unmapEmpty(slab);
    } else {
      this.#reserveIfRetired(slab);
      if (slab.sizeClass !== undefined && !slab.reserved) this.#open[slab.sizeClass]?.add(slab);
    }
  }

  /** Notes a retired slot; a slab whose used slots are all retired gives back its memory and lock and is used no more. */
  noteRetired(slab: Slab): void {
    slab.retired += 1;
    if (slab.sizeClass !== undefined) this.retired += 1;
    this.#reserveIfRetired(slab);
  }

  /** A slab whose used slots are all retired becomes a reservation: its memory and lock go back, and it takes no new secret. */
  #reserveIfRetired(slab: Slab): void {
    if (slab.used === 0 || slab.retired !== slab.used || slab.reserved) return;
    slab.reserved = true;
    if (slab.sizeClass !== undefined) this.#open[slab.sizeClass]?.delete(slab);
    this.#unsettled.delete(slab);
    this.#host.retire(slab.mapping);
  }

  /** Frees a retired slot (its views were collected). */
  freeRetired(slab: Slab, slot: number): void {
    slab.retired -= 1;
    if (slab.sizeClass !== undefined) this.retired -= 1;
    this.#giveBack(slab, slot);
  }

  /** Retries what failed before: protections to set back and wipes of freed slots. */
  retry(): void {
    if (this.#unsettled.size === 0 && this.#pendingWipes.size === 0) return; // the common case, before every allocation and close
    for (const slab of this.#unsettled) if (slab.retrySettle()) this.#unsettled.delete(slab);
    for (const [slab, slots] of this.#pendingWipes) {
      for (const slot of slots) {
        try {
          slab.clear(slot); // a damaged canary found now has no one left to tell
        } catch {
          continue;
        }
        slots.delete(slot);
        this.#giveBack(slab, slot);
      }
      if (slots.size === 0) this.#pendingWipes.delete(slab);
    }
  }

  /** Notes a slab whose protection must be retried. */
  noteUnsettled(slab: Slab): void {
    if (slab.stale.size > 0) this.#unsettled.add(slab);
  }

  /**
   * Places `size` bytes in a slot of their size class (in a new slab when every slab of the class is
   * full), or in a slab of their own when larger than the largest class; fills and protects it.
   * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED` for a new
   * slab; `ERR_PROTECTION_FAILED`. What `fill` wrote is zeroed and the slot given back.
   */
  allocate(size: number, fill: (writable: Uint8Array) => void): SecretRegion {
    this.retry();
    const sizeClass = sizeClassOf(size);
    let slab: Slab | undefined;
    if (sizeClass !== undefined) for (slab of this.#open[sizeClass] as Set<Slab>) break;
    slab ??= this.#newSlab(sizeClass, size);
    const slot = slab.take();
    if (slab.full && sizeClass !== undefined) this.#open[sizeClass]?.delete(slab);
    let view: Uint8Array;
    try {
      view = slab.fill(slot, size, fill);
    } catch (error) {
      this.noteUnsettled(slab);
      this.#giveBack(slab, slot);
      throw error;
    }
    return new SlotRegion(this, slab, slot, size, view);
  }

  /** A fresh view of a slot's data. */
  view(slab: Slab, slot: number, size: number): Uint8Array {
    return this.#host.lib.view(slab.dataAddress(slot), size);
  }

  /** Frees a wiped slot. */
  release(slab: Slab, slot: number): void {
    this.#giveBack(slab, slot);
  }

  /** Keeps a freed slot whose wipe failed, to wipe and free it before the next allocation or close. */
  defer(slab: Slab, slot: number): void {
    let slots = this.#pendingWipes.get(slab);
    if (slots === undefined) {
      slots = new Set();
      this.#pendingWipes.set(slab, slots);
    }
    slots.add(slot);
  }

  stats(): SlabStats {
    this.flush();
    let slots = 0;
    let slabs = 0;
    for (const slab of this.#slabs) {
      if (slab.sizeClass === undefined || slab.reserved) continue;
      slabs += 1;
      slots += slab.used - slab.retired;
    }
    let pendingWipes = 0;
    for (const pending of this.#pendingWipes.values()) pendingWipes += pending.size;
    return { slots, slabs, pendingWipes, retiredSlots: this.retired };
  }
}

/**
 * The {@link SecretRegion} of one slot. Opening an access makes the slot's whole page readable (the
 * other secrets on that page too) until the page's last open access ends.
 */
class SlotRegion extends ViewRegion implements SecretRegion {
  readonly #allocator: SlabAllocator;
  readonly #slab: Slab;
  readonly #slot: number;
  #wiped = false;
  #damaged = false;
  #retired = false;

  constructor(allocator: SlabAllocator, slab: Slab, slot: number, size: number, view: Uint8Array) {
    super(size, view);
    this.#allocator = allocator;
    this.#slab = slab;
    this.#slot = slot;
  }

  /** Makes the slot's page readable (not writable) and returns the view of the data. */
  protectRead(): Uint8Array {
    const view = this.view();
    this.#slab.open(this.#slot);
    return view;
  }

  /** Ends this access; the page is `PROT_NONE` again once none of its secrets is being accessed. */
  protectIdle(): void {
    try {
      this.#slab.end(this.#slot);
    } finally {
      this.#allocator.noteUnsettled(this.#slab);
    }
  }

  /**
   * Checks the canary and zero-fills the slot (core calls it only when idle, right before free).
   * When the page cannot be made writable, `free` tries again and reports it.
   */
  wipe(): void {
    try {
      this.#damaged = this.#slab.clear(this.#slot);
      this.#wiped = true;
    } catch {
      // free() retries at once, and throws if it fails again
    } finally {
      this.#allocator.noteUnsettled(this.#slab);
    }
  }

  /** A fresh view of the data on an ArrayBuffer of its own (core hands it to actions). */
  exposeView(): Uint8Array {
    return this.#allocator.view(this.#slab, this.#slot, this.size);
  }

  /**
   * Drops the view, lets the allocator retry, and wipes the slot once (checking its canary); a
   * failed wipe defers the slot to the allocator and rethrows.
   */
  #clearSlot(): void {
    this.dropView();
    this.#allocator.retry();
    if (!this.#wiped) {
      try {
        this.#damaged = this.#slab.clear(this.#slot);
        this.#wiped = true;
      } catch (error) {
        this.#allocator.defer(this.#slab, this.#slot);
        throw error;
      } finally {
        this.#allocator.noteUnsettled(this.#slab);
      }
    }
  }

  /**
   * After the wipe: keeps the wiped slot taken, so that no later secret is placed where a kept view
   * points (such a view reads zeros while a page-mate is accessed, and faults otherwise); core
   * frees it once the views are collected.
   * @throws {SecureMemoryError} as {@link free}: `ERR_PROTECTION_FAILED` (wiped later), `ERR_INTEGRITY`.
   */
  retire(): void {
    this.#clearSlot();
    this.#retired = true;
    this.#allocator.noteRetired(this.#slab);
    if (this.#damaged) {
      throw new SecureMemoryError(ErrorCode.INTEGRITY, 'The canary before the secret was overwritten: memory was written out of bounds', {
        backend: BACKEND,
      });
    }
  }

  /**
   * Frees the slot (and unmaps the slab when it was the last one).
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when the slot could not be wiped: it is kept,
   * inaccessible, and wiped and freed before the next allocation or close (`stats().pendingWipes`).
   * @throws {SecureMemoryError} `ERR_INTEGRITY` after freeing, when the canary before the data was damaged.
   */
  free(): void {
    if (this.#retired) {
      this.#retired = false;
      this.#allocator.freeRetired(this.#slab, this.#slot);
      return;
    }
    this.#clearSlot();
    this.#allocator.release(this.#slab, this.#slot);
    if (this.#damaged) {
      throw new SecureMemoryError(ErrorCode.INTEGRITY, 'The canary before the secret was overwritten: memory was written out of bounds', {
        backend: BACKEND,
      });
    }
  }

  /** The address of the first data byte (right after the slot's canary) and the secret's size. */
  location(): RegionLocation {
    return { address: this.#slab.dataAddress(this.#slot), size: this.size };
  }
}
