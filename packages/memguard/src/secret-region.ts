/**
 * The two kinds of secret region that core's `ManagedSecret` drives for the memguard factory: a
 * guarded, locked region kept `PROT_NONE` when idle (`mode: 'locked'`), and an Enclave's sealed box
 * opened into a region of the pool for each access (`mode: 'enclave'`).
 * @module
 */
import type { Secret } from '@secure-memory/core';
import type { RegionLocation, SecretRegion } from '@secure-memory/core/backend';
import type { BoxSlab } from './box-arena.js';
import { destroyed, integrityError } from './errors.js';
import { isCurrent, openInto } from './key.js';
import { track, untrack } from './lifetime.js';
import type { Ledger } from './mapping.js';
import { forget } from './open-secrets.js';
import { GuardedRegion } from './region.js';

/** One secret's region, as core drives it. */
export class LockedRegion implements SecretRegion {
  readonly #region: GuardedRegion;
  /** The canary was found damaged when the region failed closed: free() reports it. */
  #damaged = false;
  /** The secret it belongs to, to stop watching it for garbage collection once freed. */
  owner: object | undefined;
  /**
   * The view handed to every access: the data never moves, so one view serves them all. A view
   * made per access would promise nothing more (a view kept from an earlier access reads the same
   * bytes during a later one, and faults while idle, either way) and cost an external ArrayBuffer,
   * its finalizer and its bookkeeping at each access. Made again when it lost its memory
   * (`transfer()` moved it away).
   */
  #view: Uint8Array | undefined;

  constructor(region: GuardedRegion) {
    this.#region = region;
  }

  /** The guarded region (what the garbage-collection watch releases). */
  get region(): GuardedRegion {
    return this.#region;
  }

  /** Makes the data readable (not writable) and hands out the secret's view (see {@link #view}). */
  protectRead(): Uint8Array {
    const region = this.#region;
    region.protect('read');
    const view = this.#view;
    if (view !== undefined && view.byteLength === region.size) return view;
    this.#view = region.view();
    return this.#view;
  }

  /**
   * Detaches the view, then makes the data inaccessible again. Nothing to do once purged.
   *
   * When mprotect(PROT_NONE) fails the secret fails closed: its region is destroyed (wiped and
   * unmapped, or unmapped unwiped if it cannot be made writable either) and the error is thrown;
   * every later access throws `ERR_SECRET_CLOSED`, as after a purge. Keeping it would leave the
   * plaintext readable while idle, which `noAccessWhenIdle` promises never happens.
   */
  protectIdle(view: Uint8Array): void {
    const region = this.#region;
    if (!region.alive) return;
    region.revoke(view); // a view handed out is not detached (see region.ts): nothing to do for it
    try {
      region.protect('none');
    } catch (error) {
      this.#view = undefined;
      try {
        if (!region.destroy()) this.#damaged = true;
      } catch {
        // unmapped unwiped, or (munmap failing too) left listed for close, purge and exit to retry
      }
      throw error;
    }
  }

  /**
   * Makes the data writable for `free`, which core calls right after and which checks the canary
   * and wipes the whole allocation (so the data is not wiped twice). Best effort: when the pages
   * cannot be made writable, `free` deals with it (it unmaps them unwiped, and reports it).
   */
  wipe(): void {
    if (!this.#region.alive) return;
    try {
      this.#region.protect('readwrite');
    } catch {
      // free() tries again, and discards the pages if it fails too
    }
  }

  /** Checks the canary, wipes, unlocks, unmaps; throws `ERR_INTEGRITY` afterwards when the canary was damaged. */
  free(): void {
    forget(this.owner);
    if (this.owner !== undefined) untrack(this.owner);
    this.#view = undefined; // its memory is released once V8 releases it (a tombstone until then)
    if (this.#region.alive && !this.#region.destroy()) this.#damaged = true;
    if (this.#damaged) throw integrityError();
  }

  /** The first data byte, right-aligned against the trailing guard page. */
  location(): RegionLocation {
    if (!this.#region.alive) throw destroyed();
    return { address: this.#region.data, size: this.#region.size };
  }
}

/** Bits of {@link EnclaveRegion}'s flags. */
const ANCHORED = 1;
const DAMAGED = 2;

/**
 * One enclave-mode secret, as core drives it. At rest it is a sealed box in a slot of its factory's
 * arena (box-arena.ts) and nothing else: this object holds the slab and the slot number, and the
 * region of an access in progress. An access leases a guarded region from the pool, decrypts into
 * it, makes it read-only and hands out a view; when the access ends the region is wiped and made
 * inaccessible, and goes back to the pool once V8 releases the view (canary checked, data wiped).
 *
 * A native probe that asks where the data is (`location()`) while the secret is idle anchors a
 * region to it: from then on every access decrypts into that same region, which is wiped and made
 * `PROT_NONE` between accesses and released at close. That costs one region of locked memory for
 * as long as the secret lives, and makes the answer true: the plaintext appears there, and only
 * there, during the next access.
 */
export class EnclaveRegion implements SecretRegion {
  /** The slab of the sealed box; `undefined` once wiped. */
  #slab: BoxSlab | undefined;
  readonly #slot: number;
  /** The region of the current access, or the anchored one. */
  #lease: GuardedRegion | undefined;
  /** {@link ANCHORED}, {@link DAMAGED} (a canary was found damaged when an access ended: close() reports it). */
  #flags = 0;

  constructor(slab: BoxSlab, slot: number) {
    this.#slab = slab;
    this.#slot = slot;
  }

  /** The secret it belongs to (weakly held by its slot), to watch an anchored region for garbage collection. */
  get owner(): object | undefined {
    const owner = this.#slab?.owners[this.#slot];
    return owner instanceof WeakRef ? owner.deref() : undefined;
  }

  set owner(secret: Secret) {
    const slab = this.#slab;
    if (slab !== undefined) slab.arena.setOwner(slab, this.#slot, secret);
  }

  get #ledger(): Ledger {
    return (this.#slab as BoxSlab).arena.ledger;
  }

  /** The live lease, forgetting one that a purge destroyed. */
  #current(): GuardedRegion | undefined {
    const lease = this.#lease;
    if (lease !== undefined && !lease.alive) {
      this.#lease = undefined;
      this.#flags &= ~ANCHORED;
    }
    return this.#lease;
  }

  /** Decrypts into a region (the anchored one, or one from the pool), makes it read-only, hands out a view. */
  protectRead(): Uint8Array {
    const slab = this.#slab;
    const sealed = slab?.sealed(this.#slot);
    // Purged: the key it was sealed under is gone; as in locked mode, a purged secret is closed.
    if (slab === undefined || sealed === undefined || !isCurrent(sealed)) throw destroyed();
    const anchored = this.#current();
    const lease = anchored ?? GuardedRegion.lease(sealed.size, slab.arena.ledger);
    try {
      if (anchored !== undefined) lease.protect('readwrite');
      openInto(sealed, lease.data);
      lease.protect('read');
    } catch (error) {
      try {
        this.#end(lease);
      } catch {
        // the first error is the one to report; #end left no plaintext mapped it could release
      }
      throw error;
    }
    this.#lease = lease;
    return lease.view();
  }

  /**
   * Revokes the view; the region is wiped and goes back to the pool (or, anchored, is wiped and made
   * inaccessible). When it cannot be made writable to be wiped it is unmapped unwiped and the error
   * is thrown; the secret stays usable (its ciphertext is intact) and the next access leases
   * another region.
   */
  protectIdle(view: Uint8Array): void {
    const lease = this.#current();
    if (lease === undefined) return; // purged during the access: already wiped and released
    lease.revoke(view);
    this.#end(lease);
  }

  /**
   * Ends the use of `lease`: wipes it back into the pool, or scrubs the anchored region. An anchored
   * region that cannot be scrubbed is released (wiped, or unmapped unwiped) and the secret is no
   * longer anchored (a later probe anchors a new region).
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when mprotect failed (after the release).
   */
  #end(lease: GuardedRegion): void {
    if ((this.#flags & ANCHORED) !== 0) {
      let intact: boolean;
      try {
        intact = lease.scrub();
      } catch (error) {
        this.#lease = undefined;
        this.#flags &= ~ANCHORED;
        try {
          if (!lease.destroy()) this.#flags |= DAMAGED;
        } catch {
          // unmapped unwiped, or (munmap failing too) left listed for purge and exit to retry
        }
        throw error;
      }
      if (!intact) this.#flags |= DAMAGED;
      return;
    }
    this.#lease = undefined;
    if (!lease.destroy()) this.#flags |= DAMAGED;
  }

  /** Drops the ciphertext: its slot is zero-filled and freed (there is no plaintext at rest). */
  wipe(): void {
    const slab = this.#slab;
    if (slab === undefined) return;
    const owner = this.owner;
    if (owner !== undefined) untrack(owner);
    this.#slab = undefined;
    slab.arena.release(slab, this.#slot);
  }

  /** Releases an anchored region; throws `ERR_INTEGRITY` afterwards when a canary was found damaged. */
  free(): void {
    const owner = this.owner;
    if (owner !== undefined) untrack(owner);
    const lease = this.#current();
    this.#lease = undefined;
    this.#flags &= ~ANCHORED;
    if (lease !== undefined && !lease.destroy()) this.#flags |= DAMAGED;
    const slab = this.#slab;
    this.#slab = undefined;
    if (slab !== undefined) slab.arena.release(slab, this.#slot);
    if ((this.#flags & DAMAGED) !== 0) throw integrityError();
  }

  /**
   * During an access, the region holding the plaintext. While idle, anchors a region (see the class
   * comment) and says where it is.
   */
  location(): RegionLocation {
    const slab = this.#slab;
    if (slab === undefined) throw destroyed();
    const size = slab.boxLength - slab.arena.overhead;
    let lease = this.#current();
    if (lease === undefined) {
      lease = GuardedRegion.lease(size, this.#ledger);
      try {
        lease.protect('none');
      } catch (error) {
        lease.destroy();
        throw error;
      }
      this.#lease = lease;
      this.#flags |= ANCHORED;
      const owner = this.owner;
      if (owner !== undefined) track(owner, lease, 'secret', false);
    }
    return { address: lease.data, size };
  }
}
