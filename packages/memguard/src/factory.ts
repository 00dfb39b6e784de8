/**
 * The `SecretFactory` of the memguard backend. In `mode: 'enclave'` (the default) each secret is an
 * Enclave at rest (ciphertext under the process key, no locked memory) and is opened into a guarded,
 * locked region of the pool for each access. In `mode: 'locked'` each secret is a guarded, locked
 * allocation kept `PROT_NONE` when idle. In both, the data is `PROT_READ` during an access and the
 * view's memory is wiped and made inaccessible when the access ends (a kept view faults).
 * @module
 */
import {
  ErrorCode,
  type Guarantees,
  type Secret,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  type RegionFill,
  type RegionLocation,
  SecretFactoryBase,
  type SecretRegion,
  assertBytes,
  assertOneOf,
  assertOptions,
  defineGuarantees,
  describeType,
  invalidThis,
} from '@secure-memory/core/backend';
import { BACKEND, destroyed, frozen, integrityError } from './errors.js';
import { type Sealed, isCurrent, openInto, sealAt } from './key.js';
import { track, untrack } from './lifetime.js';
import { MAPPINGS_PER_BUFFER } from './map-budget.js';
import { addon } from './native.js';
import { GuardedRegion } from './region.js';
import { Ledger } from './mapping.js';
import { assertReadable, reclaimViews, writable } from './views.js';

/**
 * `mode` option: `'enclave'`, an Enclave at rest opened into a pooled guarded region per access;
 * `'locked'`, a guarded LockedBuffer per secret, `PROT_NONE` when idle.
 */
export type MemguardMode = 'enclave' | 'locked';

/** Options of {@link createFactory}. Keys it does not know are ignored (core's "auto" passes one options object to every backend). */
export interface MemguardOptions {
  /**
   * `'enclave'` (default): each secret is encrypted at rest and costs no locked memory until it is
   * read. `'locked'`: each secret is a guarded, locked buffer (one locked page or more), `PROT_NONE`
   * when idle.
   */
  mode?: MemguardMode;
  /**
   * `true`: a secret garbage-collected without `close()` emits a `SecureMemoryWarning` (code
   * `MEMGUARD_UNRELEASED`) with the stack where it was made. Default `false`: released silently.
   */
  debug?: boolean;
}

/** The counters `stats()` reports, beyond `allocated` and `inUse`. */
export interface MemguardStats {
  [counter: string]: number;
  /** Bytes locked in RAM: the inner pages of every live secret. */
  lockedBytes: number;
  /** Live secrets' allocations. */
  buffers: number;
  /** Mappings they take (three each: guard, inner pages, guard). */
  mappings: number;
  /** Bytes mapped, guard pages included. */
  mappedBytes: number;
  /** Allocations wiped but not unmapped (a failed munmap); normally 0. */
  leaked: number;
  /** Enclave mode: bytes of ciphertext the live secrets hold on the heap (0 in locked mode). */
  ciphertextBytes: number;
}

const MODES: readonly MemguardMode[] = ['enclave', 'locked'];

const LOCKED_GUARANTEES = {
  wipesOnClose: true,
  lockedInRam: true,
  excludedFromCoreDumps: true,
  noAccessWhenIdle: true,
  // Not viewsRevoked: a view kept past its access is not detached (node:crypto would take the
  // byteLength-0 view as an empty key) but faults: its memory is PROT_NONE and never reused while V8
  // holds it. The process does not live through that use, which viewsRevoked promises.
  guardPages: true,
  canary: true,
  notInheritedByFork: true,
  constantTimeEquals: true,
} as const;

/**
 * Every secret of every factory of this thread that is not closed yet, for {@link closeAllSecrets}:
 * a purge destroys their memory, and closing them makes `closed` true (as memguard's IsClosed()).
 */
const openSecrets = new Set<WeakRef<Secret>>();
const refOf = new WeakMap<object, WeakRef<Secret>>();
let pruneAt = 1024;

function remember(secret: Secret): void {
  const ref = new WeakRef(secret);
  refOf.set(secret, ref);
  openSecrets.add(ref);
  if (openSecrets.size >= pruneAt) {
    for (const r of openSecrets) if (r.deref() === undefined) openSecrets.delete(r);
    pruneAt = Math.max(1024, openSecrets.size * 2);
  }
}

function forget(owner: object | undefined): void {
  const ref = owner === undefined ? undefined : refOf.get(owner);
  if (ref !== undefined) openSecrets.delete(ref);
}

/**
 * Closes every open secret of this thread (after a purge destroyed their memory): their `closed`
 * becomes true; one in an access is closed when the access ends. Errors are collected, not thrown.
 */
export function closeAllSecrets(): unknown[] {
  const errors: unknown[] = [];
  for (const ref of [...openSecrets]) {
    openSecrets.delete(ref);
    try {
      ref.deref()?.close();
    } catch (error) {
      errors.push(error);
    }
  }
  return errors;
}

/** One secret's region, as core drives it. */
class LockedRegion implements SecretRegion {
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
interface EnclaveCounters {
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
class EnclaveRegion implements SecretRegion {
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

/**
 * memguard for the `SecretFactory` contract. Build it with {@link createFactory}.
 * @example
 * ```ts
 * const factory = new MemguardSecretFactory();          // mode 'enclave'
 * using key = factory.createRandom(32);                  // ciphertext at rest
 * key.withBytes((bytes) => hmac(bytes, message));        // a view kept past this reads byteLength 0
 * ```
 */
export class MemguardSecretFactory extends SecretFactoryBase {
  readonly name = BACKEND;
  readonly guarantees: Readonly<Guarantees>;
  /** The mode in force. */
  readonly mode: MemguardMode;
  readonly #debug: boolean;
  readonly #ledger = new Ledger();
  readonly #counters: EnclaveCounters = { ciphertextBytes: 0 };
  #made: LockedRegion | EnclaveRegion | undefined;

  /**
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object or `debug` not a
   * boolean; `ERR_INVALID_ARG_VALUE` for a `mode` other than `'enclave'` or `'locked'`.
   * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when
   * the addon is not built for this platform.
   */
  constructor(options?: MemguardOptions) {
    super();
    const given: unknown = options;
    assertOptions(given, 'options');
    const mode = given?.['mode'] ?? 'enclave';
    assertOneOf(mode, 'mode', MODES);
    const debug = given?.['debug'] ?? false;
    if (typeof debug !== 'boolean') {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "debug" option must be a boolean. Received ${describeType(debug)}`);
    }
    addon();
    this.mode = mode;
    this.#debug = debug;
    this.guarantees = defineGuarantees(mode === 'enclave' ? { ...LOCKED_GUARANTEES, encryptedAtRest: true } : LOCKED_GUARANTEES);
  }

  /**
   * Locked mode: allocates a guarded region, fills it through a view that is revoked right after,
   * and leaves it `PROT_NONE`. Enclave mode: fills a guarded region of the pool, seals it, and gives
   * the region back wiped. On failure the region is wiped and released.
   */
  protected allocate(size: number, fill: RegionFill): SecretRegion {
    if (this.mode === 'enclave') return this.#allocateEnclave(size, fill);
    const region = GuardedRegion.allocate(size, this.#ledger);
    try {
      const view = region.view(true);
      try {
        fill(view);
      } finally {
        region.revoke(view);
      }
      region.protect('none');
    } catch (error) {
      try {
        region.destroy();
      } catch {
        // the first error is the one to report; the region stays listed for purge
      }
      throw error;
    }
    const locked = new LockedRegion(region);
    this.#made = locked;
    return locked;
  }

  #allocateEnclave(size: number, fill: RegionFill): SecretRegion {
    const staging = GuardedRegion.lease(size, this.#ledger);
    let sealed: Sealed;
    try {
      const view = staging.view(true);
      try {
        fill(view);
        sealed = sealAt(staging.data, size);
      } finally {
        staging.revoke(view);
      }
    } finally {
      // biome-ignore lint/correctness/noUnsafeFinally: a damaged canary outranks the error in flight: ERR_INTEGRITY must surface
      if (!staging.destroy()) throw integrityError();
    }
    const region = new EnclaveRegion(sealed, this.#ledger, this.#counters);
    this.#made = region;
    return region;
  }

  static #check(self: unknown): MemguardSecretFactory {
    if (typeof self === 'object' && self !== null && #ledger in self) return self as MemguardSecretFactory;
    throw invalidThis('SecretFactory');
  }

  #watch(secret: Secret): Secret {
    remember(secret);
    const locked = this.#made;
    this.#made = undefined;
    if (locked instanceof LockedRegion) {
      locked.owner = secret;
      // The region is reached through the LockedRegion, which the secret holds: the registry's
      // held value (the GuardedRegion) does not keep the secret alive.
      track(secret, locked.region, 'secret', this.#debug);
    } else if (locked !== undefined) {
      // Nothing native at rest: only the debug warning, and an anchored region later (location()).
      locked.owner = secret;
      if (this.#debug) track(secret, undefined, 'secret', true);
    }
    return secret;
  }

  /**
   * Copies `source` into a new guarded region and zero-fills `source` (see `SecretFactory.new`).
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `source` is not a Uint8Array; `ERR_INVALID_ARG_VALUE` when detached.
   * @throws {RangeError} `ERR_INVALID_SIZE` when it is empty or larger than 1 GiB.
   * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when `source` is a read-only view of this
   * package's memory (it could not be wiped); `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
   */
  override new(source: Uint8Array): Secret {
    const self = MemguardSecretFactory.#check(this);
    assertBytes(source, 'source');
    assertReadable(source);
    if (!writable(source)) throw frozen('The "source" argument');
    return self.#watch(super.new.call(self, source));
  }

  /**
   * Generates `size` CSPRNG bytes straight into a new guarded region.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number.
   * @throws {RangeError} `ERR_INVALID_SIZE` unless it is a whole number from 1 to 1 GiB.
   * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
   */
  override createRandom(size: number): Secret {
    const self = MemguardSecretFactory.#check(this);
    return self.#watch(super.createRandom.call(self, size));
  }

  /**
   * Reads exactly `size` bytes from `fd` with read(2) straight into a guarded region (see
   * `SecretFactory.fromFd`); in enclave mode the region is then sealed and wiped.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad `fd` or `size` type; `ERR_INVALID_ARG_VALUE` for a bad `fd`.
   * @throws {RangeError} `ERR_INVALID_SIZE` for a bad `size`, or when the descriptor ends first (nothing is kept).
   * @throws {Error} the system error of read(2); nothing is kept.
   * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
   */
  override fromFd(fd: number, size: number): Secret {
    const self = MemguardSecretFactory.#check(this);
    return self.#watch(super.fromFd.call(self, fd, size));
  }

  /**
   * Locked bytes, live allocations, their mappings and mapped bytes; in enclave mode these count the
   * regions of accesses in progress (and anchored ones), and `ciphertextBytes` what rests on the heap.
   */
  protected backendStats(): MemguardStats {
    // Regions whose views V8 has released since the last allocation are freed first, so the figures
    // (and the process's locked memory and mappings) say what is really held.
    reclaimViews(addon());
    const l = this.#ledger;
    return {
      lockedBytes: l.lockedBytes,
      buffers: l.regions,
      mappings: l.regions * MAPPINGS_PER_BUFFER,
      mappedBytes: l.mappedBytes,
      leaked: l.leaked,
      ciphertextBytes: this.#counters.ciphertextBytes,
    };
  }
}

/**
 * Builds a memguard factory. It changes nothing process-wide (the process key is made by the first
 * secret of an enclave-mode factory).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object or `debug` not a
 * boolean; `ERR_INVALID_ARG_VALUE` for a `mode` other than `'enclave'` or `'locked'`.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when
 * the addon is not built for this platform.
 * @example
 * ```ts
 * import { createFactory } from '@secure-memory/memguard';
 * const factory = createFactory();     // mode 'enclave': encrypted at rest
 * using key = factory.new(keyBytes);    // keyBytes is zeroed
 * ```
 */
export function createFactory(options?: MemguardOptions): MemguardSecretFactory {
  return new MemguardSecretFactory(options);
}
