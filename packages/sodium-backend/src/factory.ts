/**
 * The sodium factory: one libsodium `sodium_malloc` per secret, through sodium-native, with the
 * failures that would kill the process turned into errors: a mapping budget before the kernel's
 * limit, an mmap probe before libsodium's mmap, a checked mlock, and a canary check at close.
 * @module
 */
import { ErrorCode, type Guarantees, SecureMemoryError } from '@secure-memory/core';
import { LOCK_CHOICES, type LockOption, type RegionFill, SecretFactoryBase, type SecretRegion, defineGuarantees, memlockLimitError, readChoiceOptions } from '@secure-memory/core/backend';
import { kernelMapLimit, releaseMappings, takeMappings } from './budget.js';
import { type Libsodium, libsodium, lockedLength, mappedLength, unprotectedStart } from './layout.js';
import { BACKEND, EAGAIN, ENOMEM, EPERM, MADV_DONTDUMP, MAPPINGS_PER_SECRET, errnoOf } from './native.js';
import { type RegionEvents, SodiumRegion, protectionFailed } from './region.js';

export type { LockOption };

/** Options of {@link createFactory}. Keys it does not know are ignored (core's "auto" passes one options object to every backend). */
export interface SodiumOptions {
  /**
   * `'require'` (default): a secret whose pages cannot be locked (RLIMIT_MEMLOCK) is freed and
   * `ERR_MEMLOCK_LIMIT` is thrown. `'best-effort'`: the secret is kept unlocked instead, and the
   * manifest does not claim `lockedInRam`.
   */
  lock?: LockOption;
}

/** The counters of {@link SodiumSecretFactory.stats}, besides `allocated` and `inUse`. */
export interface SodiumStats {
  /** Bytes this factory holds locked now: whole pages, one or more per secret. */
  lockedBytes: number;
  /** Mappings its live secrets take (four each). */
  mappings: number;
  /** Live secrets whose pages could not be locked (best-effort mode only). */
  unlocked: number;
  /** Closes that found the canary before the data damaged. */
  integrityFailures: number;
  /**
   * Idle secrets whose pages could not be made PROT_NONE again after an access (they are read-only,
   * never writable); retried at each allocation of this factory, at their next access and at close.
   */
  exposed: number;
  [counter: string]: number;
}

function allocationFailed(syscall: string, errno: number | undefined, requested: number, cause?: unknown): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.ALLOCATION_FAILED, `${syscall} failed${errno === undefined ? '' : ` with errno ${errno}`}`, {
    backend: BACKEND,
    syscall,
    requested,
    ...(errno === undefined ? {} : { errno }),
    ...(cause === undefined ? {} : { cause }),
  });
}

/** The error for memory libsodium did not give: `ERR_MAP_LIMIT` at the mapping limit, else `ERR_ALLOCATION_FAILED`. */
function mallocFailed(errno: number | undefined, size: number, cause?: unknown): SecureMemoryError {
  return (errno === undefined ? undefined : kernelMapLimit(errno, ENOMEM)) ?? allocationFailed('sodium_malloc', errno, size, cause);
}

/**
 * libsodium's guarded heap for Node.js: each secret in its own `sodium_malloc` allocation, between
 * guard pages, after a canary, locked, excluded from core dumps and PROT_NONE when idle. Build it
 * with {@link createFactory}.
 * @example
 * ```ts
 * const factory = new SodiumSecretFactory({ lock: 'require' });
 * using key = factory.createRandom(32);
 * const tag = key.withBytes((bytes) => createHmac('sha256', bytes).update(message).digest());
 * ```
 */
export class SodiumSecretFactory extends SecretFactoryBase {
  readonly name = BACKEND;
  readonly guarantees: Readonly<Guarantees>;
  /** The lock policy in force. */
  readonly lock: LockOption;
  readonly #lib: Libsodium;
  #live = 0;
  #lockedBytes = 0;
  #unlocked = 0;
  #integrityFailures = 0;
  readonly #exposed = new Set<SodiumRegion>();
  readonly #events: RegionEvents = {
    onFree: (_region, release) => {
      this.#live -= 1;
      if (release.lockedBytes > 0) this.#lockedBytes -= release.lockedBytes;
      else this.#unlocked -= 1;
      if (release.damaged) this.#integrityFailures += 1;
    },
    onExposed: (region, exposed) => {
      if (exposed) this.#exposed.add(region);
      else this.#exposed.delete(region);
    },
  };

  /**
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object; `ERR_INVALID_ARG_VALUE` for an unknown `lock` value.
   * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when
   * sodium-native, koffi or libc cannot be loaded, or the libsodium build has no guard pages; for the
   * first factory of a process, `ERR_MAP_LIMIT`, `ERR_ALLOCATION_FAILED` or `ERR_PROTECTION_FAILED`
   * when its sentinel allocation (the reference canary) cannot be made.
   */
  constructor(options?: SodiumOptions) {
    super();
    const { lock } = readChoiceOptions(options, { lock: { choices: LOCK_CHOICES, fallback: 'require' } });
    this.#lib = libsodium();
    this.lock = lock;
    this.guarantees = defineGuarantees({
      wipesOnClose: true,
      lockedInRam: lock === 'require',
      excludedFromCoreDumps: this.#lib.dumpExcluded,
      noAccessWhenIdle: true,
      guardPages: true,
      canary: true,
      constantTimeEquals: true,
    });
  }

  /**
   * Takes the mappings from the budget, checks that the kernel would grant the mapping, lets
   * libsodium allocate, checks the lock (and MADV_DONTDUMP, when claimed), fills, and leaves the
   * pages PROT_NONE. On any failure it zeroes what `fill` may have written, unlocks and frees; the
   * other secrets are untouched. First it tries PROT_NONE again on secrets left exposed.
   */
  protected allocate(size: number, fill: RegionFill): SecretRegion {
    if (this.#exposed.size !== 0) for (const region of this.#exposed) region.reprotect();
    const lib = this.#lib;
    const n = lib.native;
    const { pageSize } = n;
    takeMappings();
    const mapped = mappedLength(size, pageSize);
    // sodium-native passes a failed sodium_malloc (NULL) to Node, which aborts: where a mapping can
    // be refused for want of memory (a finite RLIMIT_AS, strict overcommit), ask the kernel first.
    // Elsewhere only the mapping count can refuse it, and the budget above keeps a reserve under it.
    if (n.mapMayFail()) {
      const refused = n.probeMap(mapped);
      if (refused !== 0) throw kernelMapLimit(refused, ENOMEM) ?? allocationFailed('mmap', refused, mapped);
    }
    let made: ReturnType<typeof n.malloc>;
    try {
      made = n.malloc(size);
    } catch (error) {
      throw mallocFailed(errnoOf(error), size, error);
    }
    if (typeof made === 'number') throw mallocFailed(made, size);
    const { buf, quiet } = made;
    const pages = lockedLength(size, pageSize);
    let lockedBytes = pages;
    let start: bigint | undefined;
    let view: Uint8Array;
    let address: bigint;
    try {
      address = n.address(buf);
      start = unprotectedStart(address, pageSize);
      // libsodium ignores a failed mlock and a failed madvise(MADV_DONTDUMP). When no call failed
      // inside sodium_malloc (errno untouched: `quiet`), both held. Otherwise lock the same pages
      // again to learn the outcome (a page already locked is not charged twice against
      // RLIMIT_MEMLOCK), and advise them again where the manifest claims it.
      const lockErrno = quiet ? 0 : n.mlock(start, pages);
      if (lockErrno !== 0) {
        const overLimit = lockErrno === ENOMEM || lockErrno === EPERM || lockErrno === EAGAIN;
        if (this.lock === 'require') {
          throw overLimit
            ? memlockLimitError(pages, { backend: BACKEND, errno: lockErrno, syscall: 'mlock' })
            : allocationFailed('mlock', lockErrno, pages);
        }
        lockedBytes = 0;
      }
      if (!quiet && lib.dumpExcluded) {
        const adviceErrno = n.madvise(start, pages, MADV_DONTDUMP);
        if (adviceErrno !== 0) {
          throw new SecureMemoryError(ErrorCode.PROTECTION_FAILED, `madvise failed with errno ${adviceErrno}`, {
            backend: BACKEND,
            errno: adviceErrno,
            syscall: 'madvise',
          });
        }
      }
      view = new Uint8Array(buf.buffer, buf.byteOffset, size);
      try {
        fill(view);
      } catch (error) {
        n.memzero(view);
        throw error;
      }
      const protectErrno = n.protect(buf, 'noaccess', start, pages);
      if (protectErrno !== 0) {
        n.memzero(view);
        throw protectionFailed('noaccess', protectErrno);
      }
    } catch (error) {
      // Nothing secret is left in the pages now: give the lock back at once (libsodium's deferred
      // free would, one turn later), then free.
      if (start !== undefined) n.munlock(start, pages);
      n.free(buf);
      releaseMappings();
      throw error;
    }
    this.#live += 1;
    if (lockedBytes > 0) this.#lockedBytes += lockedBytes;
    else this.#unlocked += 1;
    return new SodiumRegion(lib, buf, view, address, lockedBytes, this.#events);
  }

  /** Locked bytes, mappings of live secrets, secrets left unlocked (best-effort), canary failures seen at close, and exposed secrets. */
  protected backendStats(): SodiumStats {
    return {
      lockedBytes: this.#lockedBytes,
      mappings: this.#live * MAPPINGS_PER_SECRET,
      unlocked: this.#unlocked,
      integrityFailures: this.#integrityFailures,
      exposed: this.#exposed.size,
    };
  }
}

/**
 * Builds a {@link SodiumSecretFactory}; the `createFactory(options)` that core's
 * `createSecretFactory({ backend: 'sodium' })` calls.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object; `ERR_INVALID_ARG_VALUE` for an unknown `lock` value.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when the native layer cannot
 * be loaded or fails its self-check; `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED` when the process's first factory cannot make its sentinel allocation.
 * @example
 * ```ts
 * import { createFactory } from '@secure-memory/sodium';
 * const factory = createFactory({ lock: 'best-effort' });
 * using key = factory.new(keyBytes); // keyBytes is zero-filled
 * ```
 */
export function createFactory(options?: SodiumOptions): SodiumSecretFactory {
  return new SodiumSecretFactory(options);
}
