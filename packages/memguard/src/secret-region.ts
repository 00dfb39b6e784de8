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
import { track, trackRegion, untrack, untrackRegion } from './lifetime.js';
import type { Ledger } from './mapping.js';
import { forget } from './open-secrets.js';
import { GuardedRegion } from './region.js';

/** One secret's region, as core drives it. */
export class LockedRegion implements SecretRegion {
  readonly #region: GuardedRegion;
  /** The canary was found damaged when the region failed closed: free() reports it. */
  #damaged = false;
  /** The secret it belongs to, weakly: the list a purge closes secrets through (open-secrets.ts). */
  owner: WeakRef<Secret> | undefined;
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
    // Its watch for garbage collection stays (registered without a token: cheaper, see lifetime.ts)
    // and finds the region destroyed.
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
/** The region of the last access is kept, idle, in the arena's warm list. */
const WARM = 4;

/**
 * One enclave-mode secret, as core drives it. At rest it is a sealed box in a slot of its factory's
 * arena (box-arena.ts): this object holds the slab and the slot number, and the region of an access
 * in progress. An access leases a guarded region from the pool, decrypts into it, makes it read-only
 * and hands out a view; when the access ends the region is wiped and made inaccessible.
 *
 * The region is then kept for the next access while the secret is among its factory's few most
 * recently used idle secrets (`WarmRegions`, box-arena.ts): the next access decrypts into the same
 * region and hands out the same view, as a locked-mode secret does. Pushed out of that list, the
 * region goes back to the pool once V8 releases the view (canary checked, data wiped). Either way
 * nothing is left readable between accesses: the ciphertext at rest, and a wiped `PROT_NONE` page.
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
  /** The region of the current access, or the anchored or warm one. */
  #lease: GuardedRegion | undefined;
  /**
   * The view handed to every access while the region is kept (anchored or warm), made once as a
   * locked-mode secret's is. Held here, not by the region: an error thrown by a region's method
   * keeps the region (as its stack's receiver) for as long as the error lives, and must not keep a
   * view whose memory waits for V8 to release it.
   */
  #view: Uint8Array | undefined;
  /** The slot number times 8, plus the flags {@link ANCHORED}, {@link DAMAGED} (a canary was found damaged: close() reports it) and {@link WARM}. */
  #state: number;

  constructor(slab: BoxSlab, slot: number) {
    this.#slab = slab;
    this.#state = slot * 8;
  }

  get #slot(): number {
    return this.#state >>> 3;
  }

  /** The secret it belongs to (weakly held by its slot), to watch a kept region for garbage collection. */
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
      this.#view = undefined;
      this.#state &= ~(ANCHORED | WARM);
    }
    return this.#lease;
  }

  /** Decrypts into a region (the kept one, or one from the pool), makes it read-only, hands out a view. */
  protectRead(): Uint8Array {
    const slab = this.#slab;
    const sealed = slab?.sealed(this.#slot);
    // Purged: the key it was sealed under is gone; as in locked mode, a purged secret is closed.
    if (slab === undefined || sealed === undefined || !isCurrent(sealed)) throw destroyed();
    const kept = this.#current();
    // In an access the region is not listed: it cannot be pushed out while its view is in use.
    if ((this.#state & WARM) !== 0) slab.arena.warm.delete(this);
    const lease = kept ?? GuardedRegion.lease(sealed.size, slab.arena.ledger);
    this.#lease = lease;
    if (kept === undefined) this.#view = undefined;
    try {
      if (kept !== undefined) lease.protect('readwrite');
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
    const view = this.#view;
    // Made again when transfer() moved its memory away.
    if (view !== undefined && view.byteLength === lease.size) return view;
    this.#view = lease.view();
    return this.#view;
  }

  /**
   * Ends the access: the region is wiped and made inaccessible, and kept (warm or anchored) or given
   * back. When it cannot be made writable to be wiped it is unmapped unwiped and the error is thrown;
   * the secret stays usable (its ciphertext is intact) and the next access leases another region.
   */
  protectIdle(view: Uint8Array): void {
    const lease = this.#current();
    if (lease === undefined) return; // purged during the access: already wiped and released
    lease.revoke(view);
    this.#end(lease);
  }

  /**
   * Ends the use of `lease`: scrubs a region the secret keeps (anchored, already warm, or one the
   * warm list admits), else gives it back to the pool. A kept region that cannot be scrubbed is
   * released (wiped, or unmapped unwiped) and no longer kept.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when mprotect failed (after the release).
   */
  #end(lease: GuardedRegion): void {
    const slab = this.#slab as BoxSlab;
    const owner = this.owner;
    const keep = (this.#state & (ANCHORED | WARM)) !== 0 || (owner !== undefined && slab.arena.warm.admits(lease.innerLength));
    if (!keep) {
      this.#lease = undefined;
      this.#view = undefined;
      if (!lease.destroy()) this.#state |= DAMAGED;
      return;
    }
    let intact: boolean;
    try {
      intact = lease.scrub();
    } catch (error) {
      this.#drop(lease);
      throw error;
    }
    if (!intact) this.#state |= DAMAGED;
    if ((this.#state & ANCHORED) !== 0) return;
    if ((this.#state & WARM) === 0) {
      this.#state |= WARM;
      // A secret collected without close() gives its kept region back then.
      trackRegion(owner as object, lease);
    }
    slab.arena.warm.add(this);
  }

  /** Releases a kept region (one that failed to be scrubbed, or a warm one pushed out): it is no longer kept. */
  #drop(lease: GuardedRegion): void {
    this.#unlist();
    this.#lease = undefined;
    try {
      if (!lease.destroy()) this.#state |= DAMAGED;
    } catch {
      // unmapped unwiped, or (munmap failing too) left listed for purge and exit to retry
    }
  }

  /** Takes the secret off the warm list and stops watching it; its region (if any) is the caller's. */
  #unlist(): void {
    if ((this.#state & WARM) !== 0) {
      this.#slab?.arena.warm.delete(this);
      if (this.#lease !== undefined) untrackRegion(this.#lease);
    }
    this.#state &= ~(ANCHORED | WARM);
    this.#view = undefined;
  }

  /**
   * Gives the warm region back (the warm list pushed it out; it is idle, wiped and inaccessible): it
   * goes back to the pool once V8 releases its view.
   */
  cool(): void {
    const lease = this.#current();
    if ((this.#state & WARM) !== 0 && lease !== undefined) this.#drop(lease);
  }

  /** Drops the ciphertext: its slot is zero-filled and freed (there is no plaintext at rest). */
  wipe(): void {
    const slab = this.#slab;
    if (slab === undefined) return;
    const owner = this.owner;
    if (owner !== undefined) untrack(owner);
    this.#unlist();
    this.#slab = undefined;
    slab.arena.release(slab, this.#slot);
  }

  /** Releases a kept region; throws `ERR_INTEGRITY` afterwards when a canary was found damaged. */
  free(): void {
    const owner = this.owner;
    if (owner !== undefined) untrack(owner);
    const lease = this.#current();
    this.#unlist();
    this.#lease = undefined;
    if (lease !== undefined && !lease.destroy()) this.#state |= DAMAGED;
    const slab = this.#slab;
    this.#slab = undefined;
    if (slab !== undefined) slab.arena.release(slab, this.#slot);
    if ((this.#state & DAMAGED) !== 0) throw integrityError();
  }

  /**
   * During an access, the region holding the plaintext. While idle, anchors a region (see the class
   * comment: a warm one becomes anchored) and says where it is.
   */
  location(): RegionLocation {
    const slab = this.#slab;
    if (slab === undefined) throw destroyed();
    const size = slab.boxLength - slab.arena.overhead;
    let lease = this.#current();
    if (lease !== undefined && (this.#state & WARM) !== 0 && lease.protection === 'none') {
      // idle and warm: anchored from now on (still watched for garbage collection)
      slab.arena.warm.delete(this);
      this.#state = (this.#state & ~WARM) | ANCHORED;
    }
    if (lease === undefined) {
      lease = GuardedRegion.lease(size, this.#ledger);
      try {
        lease.protect('none');
      } catch (error) {
        lease.destroy();
        throw error;
      }
      this.#lease = lease;
      this.#view = undefined;
      this.#state |= ANCHORED;
      const owner = this.owner;
      if (owner !== undefined) track(owner, lease, 'secret', false);
    }
    return { address: lease.data, size };
  }
}
