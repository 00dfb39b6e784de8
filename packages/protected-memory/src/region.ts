/**
 * One secret's mapping and the table that accounts for a factory's mappings.
 * @module
 */
import { ErrorCode } from '@secure-memory/core';
import { type RegionLocation, type SecretRegion, secretClosed } from '@secure-memory/core/backend';
import { BACKEND, systemError } from './errors.js';
import { register, unregister } from './threads.js';
import { type Libc, MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from './libc.js';
import { mapBudget } from './map-budget.js';

/** A page-rounded mapping holding one secret at its first byte. */
export interface Mapping {
  readonly address: bigint;
  /** Mapped bytes (the secret's size rounded up to whole pages). */
  readonly length: number;
  /** True while the pages are locked in RAM (by mlock, or by the kernel for secret memory). */
  locked: boolean;
  /** True for secret memory: the kernel locked it at mmap and keeps it locked until munmap. */
  kernelLocked: boolean;
  /**
   * True once retired: wiped and replaced by an inaccessible, unlocked, empty reservation that
   * keeps the addresses from being reused while a view of the secret may still be reachable.
   */
  retired?: boolean;
  /** Its entry in the table of worker threads' mappings (see threads.ts), or -1. */
  registration?: number;
}

/** The counters `stats()` reports, beyond what the base class adds. */
export interface MappingStats {
  [counter: string]: number;
  lockedBytes: number;
  mappings: number;
  mappedBytes: number;
  unlockedMappings: number;
  deferredUnmaps: number;
  /** Mappings of closed secrets kept only as inaccessible reservations while a view of them may be reachable (no memory, no lock). */
  retiredMappings: number;
}

/**
 * Every mapping a factory holds, including those whose munmap the kernel refused (only possible at
 * `vm.max_map_count`, when unmapping the middle of a merged mapping would split it): those are
 * already wiped, are made inaccessible, and are unmapped again before the next allocation or free.
 */
export class MappingTable {
  readonly #live = new Set<Mapping>();
  readonly #deferred = new Set<Mapping>();
  /** The view of the last secret whose mapping was unmapped, its address and size (see {@link viewAt}). */
  #spareView: Uint8Array | undefined;
  #spareAddress = 0n;

  /**
   * A view of `size` bytes at `address`, for a mapping just made there. Making a view is a native
   * call and an external ArrayBuffer (about 1.3 µs of a 20 µs new+close here), and the kernel hands
   * the hole a `munmap` left to the next `mmap` of the same length; so the view of the last secret
   * unmapped, when it had the same address and size, serves again. That is safe because a region's
   * own view never leaves this library (actions get a view of their own, from `exposeView`), the
   * region dropped it when it was freed, and nothing but the mapping just made can be at `address`.
   */
  viewAt(lib: Libc, address: bigint, size: number): Uint8Array {
    const spare = this.#spareView;
    this.#spareView = undefined;
    if (spare !== undefined && this.#spareAddress === address && spare.byteLength === size) return spare;
    return lib.view(address, size);
  }

  add(lib: Libc, mapping: Mapping): void {
    mapping.registration = register(lib, mapping.address, mapping.length);
    this.#live.add(mapping);
  }

  /**
   * Unmaps `mapping` (which unlocks it); when munmap fails, unlocks it and keeps it (inaccessible)
   * for a later retry. `view`: the freed region's own view of the mapping, kept for {@link viewAt}.
   */
  release(lib: Libc, mapping: Mapping, view?: Uint8Array): void {
    // Unregistered first: once unmapped, the addresses may be another thread's, which no reaper may touch.
    unregister(mapping.registration ?? -1);
    mapping.registration = -1;
    // No munlock first (Asherah makes one): munmap unlocks the pages it unmaps and gives their
    // RLIMIT_MEMLOCK charge back (mlock(2): "a memory lock on an address range is automatically
    // removed if the address range is unmapped"), and the wipe was made while they were locked.
    if (lib.munmap(mapping.address, mapping.length) === 0) {
      mapBudget.removed(); // one mapping's share (a slab split into one per page gives back one: under, never over)
      this.#live.delete(mapping);
      this.#deferred.delete(mapping);
      if (view !== undefined) {
        this.#spareView = view;
        this.#spareAddress = mapping.address;
      }
      return;
    }
    // The kernel refused: unlock now, so that a mapping whose munmap waits holds no locked memory
    // (a failed munlock changes nothing that the later munmap won't).
    if (mapping.locked && !mapping.kernelLocked && lib.munlock(mapping.address, mapping.length) === 0) {
      mapping.locked = false;
    }
    if (!this.#deferred.has(mapping)) {
      this.#deferred.add(mapping);
      lib.mprotect(mapping.address, mapping.length, PROT_NONE); // best effort: the bytes are already zero
    }
  }

  /**
   * Replaces a wiped mapping by an inaccessible, unlocked, empty reservation of the same addresses
   * (one `mmap(MAP_FIXED)`, atomic: no other thread can map there in between). The memory and the
   * lock go back to the system; the addresses stay taken until {@link release}. When the kernel
   * refuses, the mapping is unlocked and made inaccessible instead (its pages stay, zeroed).
   */
  retire(lib: Libc, mapping: Mapping): void {
    const address = lib.mmapFixed(mapping.address, mapping.length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (address === mapping.address) {
      mapping.locked = false;
      mapping.kernelLocked = false;
    } else {
      if (mapping.locked && !mapping.kernelLocked && lib.munlock(mapping.address, mapping.length) === 0) mapping.locked = false;
      lib.mprotect(mapping.address, mapping.length, PROT_NONE);
    }
    mapping.retired = true;
  }

  /** Retries the munmap of mappings the kernel refused to unmap before. */
  retryDeferred(lib: Libc): void {
    if (this.#deferred.size === 0) return;
    for (const mapping of this.#deferred) this.release(lib, mapping);
  }

  stats(): MappingStats {
    let lockedBytes = 0;
    let mappedBytes = 0;
    let unlockedMappings = 0;
    let retiredMappings = 0;
    for (const mapping of this.#live) {
      if (mapping.retired === true) {
        retiredMappings += 1;
        continue;
      }
      mappedBytes += mapping.length;
      if (mapping.locked) lockedBytes += mapping.length;
      else if (!this.#deferred.has(mapping)) unlockedMappings += 1;
    }
    return {
      lockedBytes,
      mappings: this.#live.size - retiredMappings,
      mappedBytes,
      unlockedMappings,
      deferredUnmaps: this.#deferred.size,
      retiredMappings,
    };
  }
}

/**
 * What every region of this backend keeps: the secret's size, and its view until the region is
 * retired or freed (core never touches a region after that).
 */
export abstract class ViewRegion {
  /** The secret's size in bytes. */
  protected readonly size: number;
  #view: Uint8Array | undefined;

  constructor(size: number, view: Uint8Array) {
    this.size = size;
    this.#view = view;
  }

  /** The view of the data. @throws {SecureMemoryError} `ERR_SECRET_CLOSED` once dropped (unreachable: core never touches a freed region). */
  protected view(): Uint8Array {
    const view = this.#view;
    if (view === undefined) throw secretClosed(BACKEND);
    return view;
  }

  /** Drops the view (at retire or free). */
  protected dropView(): void {
    this.#view = undefined;
  }

  /** Drops the view and returns it (undefined when it was dropped already). */
  protected takeView(): Uint8Array | undefined {
    const view = this.#view;
    this.#view = undefined;
    return view;
  }
}

/**
 * The {@link SecretRegion} of one secret: `PROT_NONE` when idle, `PROT_READ` during an access,
 * writable only to be wiped. Core calls it; nothing else does.
 */
export class ProtectedRegion extends ViewRegion implements SecretRegion {
  readonly #lib: Libc;
  readonly #table: MappingTable;
  readonly #mapping: Mapping;

  constructor(lib: Libc, table: MappingTable, mapping: Mapping, size: number, view: Uint8Array) {
    super(size, view);
    this.#lib = lib;
    this.#table = table;
    this.#mapping = mapping;
  }

  #protect(prot: number): Uint8Array {
    const view = this.view();
    if (this.#lib.mprotect(this.#mapping.address, this.#mapping.length, prot) !== 0) {
      throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', this.#lib.errno());
    }
    return view;
  }

  /** Makes the bytes readable (not writable: a write through the view faults). */
  protectRead(): Uint8Array {
    return this.#protect(PROT_READ);
  }

  /** Makes the bytes inaccessible again; a view kept past its access now faults when touched. */
  protectIdle(): void {
    this.#protect(PROT_NONE);
  }

  /** Makes the bytes writable and zero-fills them (core calls it only when idle, right before free). */
  wipe(): void {
    this.#protect(PROT_READ | PROT_WRITE).fill(0);
  }

  /** A fresh view of the data on an ArrayBuffer of its own (core hands it to actions). */
  exposeView(): Uint8Array {
    return this.#lib.view(this.#mapping.address, this.size);
  }

  /**
   * After the wipe: gives back the memory and the lock, and keeps the addresses as an inaccessible
   * reservation until {@link free}, so that a kept view faults instead of reading a later secret.
   */
  retire(): void {
    this.dropView();
    this.#table.retryDeferred(this.#lib);
    this.#table.retire(this.#lib, this.#mapping);
  }

  /** Unmaps (which unlocks); the region is gone afterwards. */
  free(): void {
    const view = this.takeView(); // undefined when retired first
    this.#table.retryDeferred(this.#lib);
    this.#table.release(this.#lib, this.#mapping, view);
  }

  /** The address of the first data byte (the start of the mapping) and the secret's size. */
  location(): RegionLocation {
    return { address: this.#mapping.address, size: this.size };
  }
}
