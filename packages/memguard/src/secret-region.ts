/**
 * The two kinds of secret region that core's `ManagedSecret` drives for the memguard factory: a
 * guarded, locked region kept `PROT_NONE` when idle (`mode: 'locked'`), and an Enclave's sealed box
 * opened into a region of the pool for each access (`mode: 'enclave'`).
 * @module
 */
import type { RegionLocation, SecretRegion } from '@secure-memory/core/backend';
import { destroyed, integrityError } from './errors.js';
import { type Sealed, isCurrent, openInto } from './key.js';
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

  constructor(region: GuardedRegion) {
    this.#region = region;
  }

  /** The guarded region (what the garbage-collection watch releases). */
  get region(): GuardedRegion {
    return this.#region;
  }

  /** Makes the data readable (not writable) and hands out a fresh view. */
  protectRead(): Uint8Array {
    this.#region.protect('read');
    return this.#region.view();
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
    region.revoke(view);
    try {
      region.protect('none');
    } catch (error) {
      try {
        if (!region.destroy()) this.#damaged = true;
      } catch {
        // unmapped unwiped, or (munmap failing too) left listed for close, purge and exit to retry
      }
      throw error;
    }
  }

  /**
   * Zero-fills the data (before `free`, which wipes the whole allocation again). Best effort: when
   * the pages cannot be made writable, `free` deals with it (and reports it).
   */
  wipe(): void {
    if (!this.#region.alive) return;
    try {
      this.#region.protect('readwrite');
    } catch {
      return;
    }
    this.#region.wipeData();
  }

  /** Checks the canary, wipes, unlocks, unmaps; throws `ERR_INTEGRITY` afterwards when the canary was damaged. */
  free(): void {
    forget(this.owner);
    if (this.owner !== undefined) untrack(this.owner);
    if (this.#region.alive && !this.#region.destroy()) this.#damaged = true;
    if (this.#damaged) throw integrityError();
  }

  /** The first data byte, right-aligned against the trailing guard page. */
  location(): RegionLocation {
    if (!this.#region.alive) throw destroyed();
    return { address: this.#region.data, size: this.#region.size };
  }
}

/** The counters an enclave-mode factory keeps beyond its ledger. */
export interface EnclaveCounters {
  ciphertextBytes: number;
}

/**
 * One enclave-mode secret, as core drives it. At rest it is a sealed box on the heap and nothing
 * else. An access leases a guarded region from the pool, decrypts into it, makes it read-only and
 * hands out a view; when the access ends the region is wiped and made inaccessible, and goes back to the pool
 * once V8 releases the view
 * (canary checked, data wiped).
 *
 * A native probe that asks where the data is (`location()`) while the secret is idle anchors a
 * region to it: from then on every access decrypts into that same region, which is wiped and made
 * `PROT_NONE` between accesses and released at close. That costs one region of locked memory for
 * as long as the secret lives, and makes the answer true: the plaintext appears there, and only
 * there, during the next access.
 */
export class EnclaveRegion implements SecretRegion {
  #sealed: Sealed | undefined;
  readonly #size: number;
  readonly #ledger: Ledger;
  readonly #counters: EnclaveCounters;
  /** The region of the current access, or the anchored one. */
  #lease: GuardedRegion | undefined;
  #anchored = false;
  /** A canary was found damaged when an access ended: close() reports it. */
  #damaged = false;
  /** The secret it belongs to, to watch an anchored region for garbage collection. */
  owner: object | undefined;

  constructor(sealed: Sealed, ledger: Ledger, counters: EnclaveCounters) {
    this.#sealed = sealed;
    this.#size = sealed.size;
    this.#ledger = ledger;
    this.#counters = counters;
    counters.ciphertextBytes += sealed.box.byteLength;
  }

  /** The live lease, forgetting one that a purge destroyed. */
  #current(): GuardedRegion | undefined {
    const lease = this.#lease;
    if (lease !== undefined && !lease.alive) {
      this.#lease = undefined;
      this.#anchored = false;
    }
    return this.#lease;
  }

  /** Decrypts into a region (the anchored one, or one from the pool), makes it read-only, hands out a view. */
  protectRead(): Uint8Array {
    const sealed = this.#sealed;
    // Purged: the key it was sealed under is gone; as in locked mode, a purged secret is closed.
    if (sealed === undefined || !isCurrent(sealed)) throw destroyed();
    const anchored = this.#current();
    const lease = anchored ?? GuardedRegion.lease(this.#size, this.#ledger);
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
    if (this.#anchored) {
      let intact: boolean;
      try {
        intact = lease.scrub();
      } catch (error) {
        this.#lease = undefined;
        this.#anchored = false;
        try {
          if (!lease.destroy()) this.#damaged = true;
        } catch {
          // unmapped unwiped, or (munmap failing too) left listed for purge and exit to retry
        }
        throw error;
      }
      if (!intact) this.#damaged = true;
      return;
    }
    this.#lease = undefined;
    if (!lease.destroy()) this.#damaged = true;
  }

  /** Drops the ciphertext (there is no plaintext at rest). */
  wipe(): void {
    const sealed = this.#sealed;
    if (sealed === undefined) return;
    this.#sealed = undefined;
    this.#counters.ciphertextBytes -= sealed.box.byteLength;
    sealed.box.fill(0);
  }

  /** Releases an anchored region; throws `ERR_INTEGRITY` afterwards when a canary was found damaged. */
  free(): void {
    forget(this.owner);
    if (this.owner !== undefined) untrack(this.owner);
    const lease = this.#current();
    this.#lease = undefined;
    this.#anchored = false;
    if (lease !== undefined && !lease.destroy()) this.#damaged = true;
    if (this.#damaged) throw integrityError();
  }

  /**
   * During an access, the region holding the plaintext. While idle, anchors a region (see the class
   * comment) and says where it is.
   */
  location(): RegionLocation {
    if (this.#sealed === undefined) throw destroyed();
    let lease = this.#current();
    if (lease === undefined) {
      lease = GuardedRegion.lease(this.#size, this.#ledger);
      try {
        lease.protect('none');
      } catch (error) {
        lease.destroy();
        throw error;
      }
      this.#lease = lease;
      this.#anchored = true;
      if (this.owner !== undefined) track(this.owner, lease, 'secret', false);
    }
    return { address: lease.data, size: this.#size };
  }
}
