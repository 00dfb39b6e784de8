/**
 * One slab of slab packing (see slab.ts): a mapping cut into slots of one size class, each an
 * 8-byte canary followed by the data, never straddling a page; its free slots, its canaries, and
 * the protection of its pages (a count of open accesses per page).
 * @module
 */
import { randomFillSync } from 'node:crypto';
import { ErrorCode } from '@secure-memory/core';
import { systemError } from './errors.js';
import { type Libc, PROT_NONE, PROT_READ, PROT_WRITE } from './libc.js';
import type { Mapping } from './region.js';

/** Bytes of canary right before each slot's data. */
export const CANARY_BYTES = 8;

/**
 * The slot sizes (canary plus data) of the size classes. The last three fill a 4 KiB page exactly
 * (8, 4 and 2 slots); every stride is a multiple of 8, so data is 8-byte aligned.
 */
export const SLOT_STRIDES: readonly number[] = Object.freeze([24, 40, 72, 136, 264, 512, 1024, 2048]);

/** The data bytes each size class holds: 16, 32, 64, 128, 256, 504, 1016 and 2040. A larger secret gets its own mapping. */
export const SIZE_CLASSES: readonly number[] = Object.freeze(SLOT_STRIDES.map((stride) => stride - CANARY_BYTES));

/**
 * The largest slab: the slabs of a class start at one page and double, up to 64 KiB (16 pages of
 * 4 KiB). A slab that RLIMIT_MEMLOCK refuses is tried again at half the size, down to one page.
 */
export const MAX_SLAB_BYTES = 64 * 1024;

/** The size class index for `size` bytes, or `undefined` when it needs its own mapping. */
export function sizeClassOf(size: number): number | undefined {
  for (let index = 0; index < SIZE_CLASSES.length; index += 1) if (size <= (SIZE_CLASSES[index] as number)) return index;
  return undefined;
}

/**
 * One slab: a mapping split into protection groups (a page each; the whole mapping for a slab of
 * one large secret), each holding whole slots.
 */
export class Slab {
  readonly mapping: Mapping;
  /** The size class, or `undefined` for the slab of one large secret. */
  readonly sizeClass: number | undefined;
  readonly stride: number;
  readonly capacity: number;
  readonly #lib: Libc;
  readonly #groupBytes: number;
  /** The address of each group (computed once: no bigint arithmetic per access). */
  readonly #groupAddresses: bigint[];
  readonly #slotsPerGroup: number;
  /** Open accesses per group. */
  readonly #opens: Uint32Array;
  /** Free slot indices; the lowest is taken first. */
  readonly #free: number[] = [];
  /** The canary value of this slab's slots (random, never written anywhere but before the data). */
  readonly #canary = new Uint8Array(CANARY_BYTES);
  /** The whole slab, for writing canaries and wiping; never handed out. */
  readonly #memory: Uint8Array;
  /** Groups whose protection could not be set back; retried before the next allocation or close. */
  readonly stale = new Set<number>();
  used = 0;
  /** Used slots that are retired (wiped, kept from reuse while a view of them may be reachable). */
  retired = 0;
  /** True once every used slot was retired: the mapping is then only a reservation (no memory, no lock), never used again. */
  reserved = false;

  constructor(lib: Libc, mapping: Mapping, sizeClass: number | undefined, stride: number, groupBytes: number) {
    this.#lib = lib;
    this.mapping = mapping;
    this.sizeClass = sizeClass;
    this.stride = stride;
    this.#groupBytes = groupBytes;
    this.#slotsPerGroup = Math.floor(groupBytes / stride);
    const groups = mapping.length / groupBytes;
    this.capacity = groups * this.#slotsPerGroup;
    this.#opens = new Uint32Array(groups);
    this.#groupAddresses = Array.from({ length: groups }, (_, group) => mapping.address + BigInt(group * groupBytes));
    for (let slot = this.capacity - 1; slot >= 0; slot -= 1) this.#free.push(slot);
    randomFillSync(this.#canary);
    // Up to the end of the last slot. (A large secret's stride is more than half its mapping, so its slab has one slot.)
    this.#memory = lib.view(mapping.address, (groups - 1) * groupBytes + this.#slotsPerGroup * stride);
  }

  get full(): boolean {
    return this.#free.length === 0;
  }

  take(): number {
    const slot = this.#free.pop() as number; // callers take only from slabs that are not full
    this.used += 1;
    return slot;
  }

  giveBack(slot: number): void {
    this.#free.push(slot);
    this.used -= 1;
  }

  group(slot: number): number {
    return Math.floor(slot / this.#slotsPerGroup);
  }

  /** Offset of the slot (its canary) in the slab. */
  offset(slot: number): number {
    return this.group(slot) * this.#groupBytes + (slot % this.#slotsPerGroup) * this.stride;
  }

  /** The address of the slot's first data byte. */
  dataAddress(slot: number): bigint {
    return this.mapping.address + BigInt(this.offset(slot) + CANARY_BYTES);
  }

  #mprotect(group: number, prot: number): number {
    return this.#lib.mprotect(this.#groupAddresses[group] as bigint, this.#groupBytes, prot);
  }

  /**
   * Gives `group` the protection its open count calls for: `PROT_READ` while an access is open,
   * else `PROT_NONE`. When the kernel refuses, remembers the group for a retry and throws.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` (or `ERR_MAP_LIMIT`).
   */
  settle(group: number): void {
    if (this.#mprotect(group, (this.#opens[group] as number) > 0 ? PROT_READ : PROT_NONE) === 0) {
      if (this.stale.size !== 0) this.stale.delete(group);
      return;
    }
    this.stale.add(group);
    throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', this.#lib.errno(), this.#groupBytes);
  }

  /** Retries the groups whose protection could not be set back; true when none is left. */
  retrySettle(): boolean {
    for (const group of this.stale) {
      try {
        this.settle(group);
      } catch {
        // still refused: kept for the next retry
      }
    }
    return this.stale.size === 0;
  }

  /** Makes the slot's group writable (for a fill or a wipe). */
  #writable(group: number): void {
    if (this.#mprotect(group, PROT_READ | PROT_WRITE) !== 0) {
      throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', this.#lib.errno(), this.#groupBytes);
    }
  }

  /**
   * Opens an access to a slot: its page becomes readable on the first open access of any of the
   * page's secrets.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED`; nothing changed then.
   */
  open(slot: number): void {
    const group = this.group(slot);
    const opens = this.#opens[group] as number;
    const stale = this.stale.size !== 0 && this.stale.has(group);
    if (opens === 0 || stale) {
      if (this.#mprotect(group, PROT_READ) !== 0) {
        throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', this.#lib.errno());
      }
      if (stale) this.stale.delete(group);
    }
    this.#opens[group] = opens + 1;
  }

  /**
   * Ends an access: the page is `PROT_NONE` again when its last open access ends.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when the kernel refuses (the access has ended all the same).
   */
  end(slot: number): void {
    const group = this.group(slot);
    const opens = (this.#opens[group] as number) - 1;
    this.#opens[group] = opens;
    if (opens === 0) this.settle(group);
  }

  /**
   * Writes a fresh canary and the data of a slot taken from this slab. On failure it zero-fills the
   * slot and throws; the caller gives the slot back.
   */
  fill(slot: number, size: number, fill: (writable: Uint8Array) => void): Uint8Array {
    const group = this.group(slot);
    const start = this.offset(slot);
    this.#writable(group);
    // A view into the slab's own (never handed out): no native call and no ArrayBuffer per secret.
    const view = this.#memory.subarray(start + CANARY_BYTES, start + CANARY_BYTES + size);
    try {
      this.#memory.set(this.#canary, start);
      fill(view);
    } catch (error) {
      this.#memory.fill(0, start, start + this.stride);
      try {
        this.settle(group);
      } catch {
        // remembered in `stale`; the fill's error is the one to report
      }
      throw error;
    }
    try {
      this.settle(group);
    } catch (error) {
      this.#memory.fill(0, start, start + this.stride); // the group is still writable (settle failed)
      throw error;
    }
    return view;
  }

  /**
   * Checks the slot's canary, then zero-fills the whole slot (canary and data). Returns true when
   * the canary was damaged. A group whose protection cannot be set back afterwards is retried later
   * (the slot is zero already).
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when the slot cannot be made writable: nothing was wiped.
   */
  clear(slot: number): boolean {
    const group = this.group(slot);
    const start = this.offset(slot);
    this.#writable(group);
    let difference = 0;
    for (let i = 0; i < CANARY_BYTES; i += 1) difference |= (this.#memory[start + i] as number) ^ (this.#canary[i] as number);
    this.#memory.fill(0, start, start + this.stride);
    try {
      this.settle(group);
    } catch {
      // remembered in `stale` and retried before the next allocation or close
    }
    return difference !== 0;
  }
}
