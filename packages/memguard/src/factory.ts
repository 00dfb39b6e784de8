/**
 * The `SecretFactory` of the memguard backend: each secret is a guarded, locked allocation kept
 * `PROT_NONE` when idle and `PROT_READ` during an access, whose view is revoked when the access ends.
 * @module
 */
import {
  ErrorCode,
  type Guarantees,
  type RegionFill,
  type RegionLocation,
  type Secret,
  SecretFactoryBase,
  type SecretRegion,
  SecureMemoryTypeError,
  assertOneOf,
  assertOptions,
  defineGuarantees,
  describeType,
  invalidThis,
} from '@secure-memory/core';
import { BACKEND, destroyed, frozen, integrityError } from './errors.js';
import { track, untrack } from './lifetime.js';
import { MAPPINGS_PER_BUFFER } from './map-budget.js';
import { addon } from './native.js';
import { GuardedRegion, Ledger, writable } from './region.js';

/** `mode` option: `'locked'`, a guarded LockedBuffer per secret. (Part 2 adds `'enclave'`.) */
export type MemguardMode = 'locked';

/** Options of {@link createFactory}. Keys it does not know are ignored (core's "auto" passes one options object to every backend). */
export interface MemguardOptions {
  /** `'locked'` (default): each secret is a guarded, locked buffer, `PROT_NONE` when idle. */
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
}

const MODES: readonly MemguardMode[] = ['locked'];

/** One secret's region, as core drives it. */
class LockedRegion implements SecretRegion {
  readonly #region: GuardedRegion;
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

  /** Detaches the view, then makes the data inaccessible again. Nothing to do once purged. */
  protectIdle(view: Uint8Array): void {
    if (!this.#region.alive) return;
    this.#region.revoke(view);
    this.#region.protect('none');
  }

  /** Zero-fills the data (before `free`, which wipes the whole allocation again). */
  wipe(): void {
    if (!this.#region.alive) return;
    this.#region.protect('readwrite');
    this.#region.wipeData();
  }

  /** Checks the canary, wipes, unlocks, unmaps; throws `ERR_INTEGRITY` afterwards when the canary was damaged. */
  free(): void {
    if (this.owner !== undefined) untrack(this.owner);
    if (!this.#region.alive) return;
    if (!this.#region.destroy()) throw integrityError();
  }

  /** The first data byte, right-aligned against the trailing guard page. */
  location(): RegionLocation {
    if (!this.#region.alive) throw destroyed();
    return { address: this.#region.data, size: this.#region.size };
  }
}

/**
 * memguard for the `SecretFactory` contract. Build it with {@link createFactory}.
 * @example
 * ```ts
 * const factory = new MemguardSecretFactory({ mode: 'locked' });
 * using key = factory.createRandom(32);
 * key.withBytes((bytes) => hmac(bytes, message)); // a view kept past this reads byteLength 0
 * ```
 */
export class MemguardSecretFactory extends SecretFactoryBase {
  readonly name = BACKEND;
  readonly guarantees: Readonly<Guarantees>;
  /** The mode in force. */
  readonly mode: MemguardMode;
  readonly #debug: boolean;
  readonly #ledger = new Ledger();
  #made: LockedRegion | undefined;

  /**
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object or `debug` not a
   * boolean; `ERR_INVALID_ARG_VALUE` for a `mode` other than `'locked'`.
   * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when
   * the addon is not built for this platform.
   */
  constructor(options?: MemguardOptions) {
    super();
    const given: unknown = options;
    assertOptions(given, 'options');
    const mode = given?.['mode'] ?? 'locked';
    assertOneOf(mode, 'mode', MODES);
    const debug = given?.['debug'] ?? false;
    if (typeof debug !== 'boolean') {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "debug" option must be a boolean. Received ${describeType(debug)}`);
    }
    addon();
    this.mode = mode;
    this.#debug = debug;
    this.guarantees = defineGuarantees({
      wipesOnClose: true,
      lockedInRam: true,
      excludedFromCoreDumps: true,
      noAccessWhenIdle: true,
      viewsRevoked: true,
      guardPages: true,
      canary: true,
      notInheritedByFork: true,
      constantTimeEquals: true,
    });
  }

  /**
   * Allocates a guarded region, fills it through a view that is revoked right after, and leaves it
   * `PROT_NONE`. On failure the region is wiped and released.
   */
  protected allocate(size: number, fill: RegionFill): SecretRegion {
    const region = GuardedRegion.allocate(size, this.#ledger);
    try {
      const view = region.view();
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

  static #check(self: unknown): MemguardSecretFactory {
    if (typeof self === 'object' && self !== null && #ledger in self) return self as MemguardSecretFactory;
    throw invalidThis('SecretFactory');
  }

  #watch(secret: Secret): Secret {
    const locked = this.#made;
    this.#made = undefined;
    if (locked !== undefined) {
      locked.owner = secret;
      // The region is reached through the LockedRegion, which the secret holds: the registry's
      // held value (the GuardedRegion) does not keep the secret alive.
      track(secret, locked.region, 'secret', this.#debug);
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
    if (source instanceof Uint8Array && !writable(source)) throw frozen('The "source" argument');
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

  /** Locked bytes, live allocations, their mappings and mapped bytes. */
  protected backendStats(): MemguardStats {
    const l = this.#ledger;
    return {
      lockedBytes: l.lockedBytes,
      buffers: l.regions,
      mappings: l.regions * MAPPINGS_PER_BUFFER,
      mappedBytes: l.mappedBytes,
      leaked: l.leaked,
    };
  }
}

/**
 * Builds a memguard factory. It changes nothing process-wide.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object or `debug` not a
 * boolean; `ERR_INVALID_ARG_VALUE` for a `mode` other than `'locked'`.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when
 * the addon is not built for this platform.
 * @example
 * ```ts
 * import { createFactory } from '@secure-memory/memguard';
 * const factory = createFactory({ mode: 'locked' });
 * using key = factory.new(keyBytes); // keyBytes is zeroed
 * ```
 */
export function createFactory(options?: MemguardOptions): MemguardSecretFactory {
  return new MemguardSecretFactory(options);
}
