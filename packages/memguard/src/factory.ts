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
  SecureMemoryError,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  type RegionFill,
  SecretFactoryBase,
  type SecretRegion,
  assertBytes,
  assertOneOf,
  assertOptions,
  defineGuarantees,
  describeType,
  invalidThis,
} from '@secure-memory/core/backend';
import { BACKEND, frozen, integrityError, prepared } from './errors.js';
import { readyKey, sealInto } from './key.js';
import { BoxArena, type BoxSlab } from './box-arena.js';
import { track } from './lifetime.js';
import { MAPPINGS_PER_BUFFER } from './map-budget.js';
import { addon } from './native.js';
import { GuardedRegion } from './region.js';
import { Ledger } from './mapping.js';
import { assertReadable, reclaimViews, writable } from './views.js';
import { remember } from './open-secrets.js';
import { EnclaveRegion, LockedRegion } from './secret-region.js';

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
  /** Enclave mode: the slabs the sealed boxes rest in (made on the first secret). */
  #arena: BoxArena | undefined;
  #made: LockedRegion | EnclaveRegion | undefined;
  /** Set during {@link createRandom}: the region is filled by OpenSSL's CSPRNG, natively. */
  #random = false;

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
    const region = prepared(GuardedRegion.allocate(size, this.#ledger), (made) => {
      this.#fill(made, fill);
      made.protect('none');
    });
    const locked = new LockedRegion(region);
    this.#made = locked;
    return locked;
  }

  #allocateEnclave(size: number, fill: RegionFill): SecretRegion {
    readyKey(); // before anything is taken: a refused key leaves nothing to undo
    this.#arena ??= new BoxArena(addon().SEAL_OVERHEAD, this.#ledger);
    const arena = this.#arena;
    const staging = GuardedRegion.lease(size, this.#ledger);
    let slot: { slab: BoxSlab; slot: number } | undefined;
    try {
      this.#fill(staging, fill);
      slot = arena.take(size + arena.overhead);
      const sealed = sealInto(staging.data, size, slot.slab.box(slot.slot));
      slot.slab.ids[slot.slot] = sealed.id;
      slot.slab.epochs[slot.slot] = sealed.epoch;
    } catch (error) {
      if (slot !== undefined) arena.release(slot.slab, slot.slot);
      throw error;
    } finally {
      if (!staging.destroy()) {
        if (slot !== undefined) arena.release(slot.slab, slot.slot);
        // biome-ignore lint/correctness/noUnsafeFinally: a damaged canary outranks the error in flight: ERR_INTEGRITY must surface
        throw integrityError();
      }
    }
    const region = new EnclaveRegion(slot.slab, slot.slot);
    this.#made = region;
    return region;
  }

  /**
   * Fills a writable region: with OpenSSL's CSPRNG straight into it for {@link createRandom} (no
   * view, no copy through JavaScript), else through an internal view revoked right after.
   */
  #fill(region: GuardedRegion, fill: RegionFill): void {
    if (this.#random) {
      if (addon().random(region.data, region.size) !== 0) {
        throw new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'OpenSSL failed to generate random bytes', { backend: BACKEND });
      }
      return;
    }
    const view = region.view(true);
    try {
      fill(view);
    } finally {
      region.revoke(view);
    }
  }

  static #check(self: unknown): MemguardSecretFactory {
    if (typeof self === 'object' && self !== null && #ledger in self) return self as MemguardSecretFactory;
    throw invalidThis('SecretFactory');
  }

  #watch(secret: Secret): Secret {
    const locked = this.#made;
    this.#made = undefined;
    if (locked instanceof LockedRegion) {
      locked.owner = remember(secret);
      // The region is reached through the LockedRegion, which the secret holds: the registry's
      // held value (the GuardedRegion) does not keep the secret alive. Registered without an
      // unregister token (a fifth of the cost): after close() the callback finds the region destroyed.
      track(secret, locked.region, 'secret', this.#debug, false);
    } else if (locked !== undefined) {
      // Nothing native at rest: only the debug warning, and an anchored region later (location()).
      // Its slot holds it weakly, which is how a purge finds it to close it (not remember()).
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
   * Generates `size` CSPRNG bytes (OpenSSL's, as `newEnclaveRandom`) straight into a new guarded
   * region, natively: no view of it is made.
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `size` is not a number.
   * @throws {RangeError} `ERR_INVALID_SIZE` unless it is a whole number from 1 to 1 GiB.
   * @throws {SecureMemoryError} `ERR_MEMLOCK_LIMIT`, `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED`.
   */
  override createRandom(size: number): Secret {
    const self = MemguardSecretFactory.#check(this);
    self.#random = true;
    let secret: Secret;
    try {
      secret = super.createRandom.call(self, size);
    } finally {
      self.#random = false;
    }
    return self.#watch(secret);
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
      ciphertextBytes: this.#arena?.ciphertextBytes ?? 0,
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
