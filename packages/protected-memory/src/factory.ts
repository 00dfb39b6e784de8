/**
 * The protected-memory factory: one page-rounded mapping per secret (or, with slab packing, a slot
 * in a shared slab), locked, excluded from core dumps and from forked children, inaccessible when
 * idle; in memfd_secret mode, also removed from the kernel's direct map.
 * @module
 */
import {
  ErrorCode,
  type Guarantees,
  SecureMemoryError,
  SecureMemoryTypeError,
  isSecureMemoryError,
} from '@secure-memory/core';
import { LOCK_CHOICES, type LockOption, type RegionFill, SecretFactoryBase, type SecretRegion, defineGuarantees, readChoiceOptions } from '@secure-memory/core/backend';
import { BACKEND, lockError, systemError } from './errors.js';
import {
  type Libc,
  MADV_DONTDUMP,
  MADV_DONTFORK,
  MADV_WIPEONFORK,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  libc,
} from './libc.js';
import { mapBudget } from './map-budget.js';
import { type Mapping, MappingTable, type MappingStats, ProtectedRegion } from './region.js';
import { secretMemoryAvailable } from './secret-memory.js';
import { reapDeadThreads, watchWorkers } from './threads.js';
import { SlabAllocator, type SlabStats } from './slab.js';

export type { LockOption };

/** `secretMemory` option: use memfd_secret where the kernel has it (`'auto'`), insist on it, or never. */
export type SecretMemoryOption = 'auto' | 'require' | 'off';
/** The kind of memory a factory maps: memfd_secret pages, or private anonymous pages. */
export type ProtectedMemoryMode = 'secret-memory' | 'anonymous';
/** `packing` option: one mapping per secret (`'page'`), or small secrets packed into shared slabs (`'slab'`). */
export type PackingOption = 'page' | 'slab';

/** Options of {@link createFactory}. Keys it does not know are ignored (core's "auto" passes one options object to every backend). */
export interface ProtectedMemoryOptions {
  /**
   * `'auto'` (default): secret memory when the kernel has it and `lock` is `'require'`, else anonymous
   * memory. `'require'`: secret memory or `ERR_UNSUPPORTED_PLATFORM`. `'off'`: anonymous memory.
   */
  secretMemory?: SecretMemoryOption;
  /**
   * `'require'` (default): a refused lock throws `ERR_MEMLOCK_LIMIT`. `'best-effort'`: the secret is
   * kept unlocked instead, and the manifest does not claim `lockedInRam` (for tight limits such as
   * AWS Lambda's 64 KiB). Secret memory is always locked, so it cannot be combined with `'best-effort'`.
   */
  lock?: LockOption;
  /**
   * `'page'` (default): every secret has its own page-rounded mapping. `'slab'`: secrets of up to
   * 2040 bytes share locked slabs in size classes (about 40 locked bytes for a 32-byte key instead of
   * a page, and a few mappings instead of one per secret), each with an 8-byte canary checked on
   * close (`canary` is claimed); larger ones get a mapping of their own, with a canary too. The cost:
   * **while one secret is being accessed, the other secrets on its page are readable too**, so
   * `noAccessWhenIdle` is not claimed.
   */
  packing?: PackingOption;
}

const SECRET_MEMORY_CHOICES: readonly SecretMemoryOption[] = ['auto', 'require', 'off'];
const PACKING_CHOICES: readonly PackingOption[] = ['page', 'slab'];

/**
 * Asherah's protected memory for Node.js, through koffi (no compiler at install). Build it with
 * {@link createFactory}; `mode` says which memory is in force and `guarantees` what it keeps.
 * @example
 * ```ts
 * const factory = new ProtectedMemorySecretFactory({ secretMemory: 'off' });
 * using key = factory.createRandom(32);
 * key.withBytes((bytes) => hmac(bytes, message));
 * ```
 */
export class ProtectedMemorySecretFactory extends SecretFactoryBase {
  readonly name = BACKEND;
  readonly guarantees: Readonly<Guarantees>;
  /** The memory this factory maps. */
  readonly mode: ProtectedMemoryMode;
  /** The lock policy in force. */
  readonly lock: LockOption;
  /** How secrets are laid out: a mapping each, or slots in shared slabs. */
  readonly packing: PackingOption;
  readonly #lib: Libc;
  readonly #table = new MappingTable();
  readonly #slabs: SlabAllocator | undefined;

  /**
   * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object; `ERR_INVALID_ARG_VALUE`
   * for an unknown `secretMemory`, `lock` or `packing` value, or for `secretMemory: 'require'` with `lock: 'best-effort'`.
   * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux, or with `secretMemory: 'require'`
   * where memfd_secret is missing; `ERR_BACKEND_UNAVAILABLE` when koffi or libc cannot be loaded.
   */
  constructor(options?: ProtectedMemoryOptions) {
    super();
    const { secretMemory, lock, packing } = readChoiceOptions(options, {
      secretMemory: { choices: SECRET_MEMORY_CHOICES, fallback: 'auto' },
      lock: { choices: LOCK_CHOICES, fallback: 'require' },
      packing: { choices: PACKING_CHOICES, fallback: 'page' },
    });
    if (secretMemory === 'require' && lock === 'best-effort') {
      throw new SecureMemoryTypeError(
        ErrorCode.INVALID_ARG_VALUE,
        `The "secretMemory" option 'require' cannot be combined with the "lock" option 'best-effort': secret memory is always locked`,
      );
    }
    this.#lib = libc();
    watchWorkers(this.#lib); // shared with the workers this thread spawns from now on, reaped when they end
    reapDeadThreads(this.#lib);
    if (secretMemory === 'require' && !secretMemoryAvailable()) {
      throw new SecureMemoryError(ErrorCode.UNSUPPORTED_PLATFORM, 'memfd_secret is not available in this kernel or process', {
        backend: BACKEND,
        syscall: 'memfd_secret',
      });
    }
    this.mode = secretMemory !== 'off' && lock === 'require' && secretMemoryAvailable() ? 'secret-memory' : 'anonymous';
    this.lock = lock;
    this.packing = packing;
    const slab = packing === 'slab';
    this.guarantees = defineGuarantees({
      wipesOnClose: true,
      lockedInRam: lock === 'require',
      excludedFromCoreDumps: true,
      // In a slab, a page is readable while any of its secrets is being accessed: a secret is then
      // readable outside its own access, so this is claimed for one mapping per secret only.
      noAccessWhenIdle: !slab,
      notInheritedByFork: true,
      hiddenFromKernel: this.mode === 'secret-memory',
      canary: slab,
      constantTimeEquals: true,
    });
    this.#slabs = slab
      ? new SlabAllocator({
          lib: this.#lib,
          map: (length) => this.#map(length),
          release: (mapping) => this.#table.release(this.#lib, mapping),
          retire: (mapping) => this.#table.retire(this.#lib, mapping),
        })
      : undefined;
  }

  #mapAnonymous(length: number): Mapping {
    const lib = this.#lib;
    const address = lib.mmap(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
    if (address === lib.mapFailed || address === 0n) throw systemError(ErrorCode.ALLOCATION_FAILED, 'mmap', lib.errno(), length);
    const mapping: Mapping = { address, length, locked: false, kernelLocked: false };
    this.#table.add(lib, mapping);
    return mapping;
  }

  #mapSecret(length: number): Mapping {
    const lib = this.#lib;
    const fd = lib.memfdSecret(O_CLOEXEC);
    if (fd < 0) throw systemError(ErrorCode.ALLOCATION_FAILED, 'memfd_secret', lib.errno(), length);
    let address: bigint;
    try {
      if (lib.ftruncate(fd, length) !== 0) throw systemError(ErrorCode.ALLOCATION_FAILED, 'ftruncate', lib.errno(), length);
      // The kernel marks secret memory locked and not dumpable here, and refuses it with EAGAIN
      // beyond RLIMIT_MEMLOCK. (mlock on it fails: its pages cannot be pinned by get_user_pages.)
      address = lib.mmap(length, PROT_READ | PROT_WRITE, MAP_SHARED, fd);
      if (address === lib.mapFailed || address === 0n) throw lockError('mmap', lib.errno(), length);
    } finally {
      // One descriptor per live secret would exhaust RLIMIT_NOFILE; the mapping keeps the memory.
      // Linux releases the descriptor even when close reports an error, so there is nothing to undo.
      lib.close(fd);
    }
    const mapping: Mapping = { address, length, locked: true, kernelLocked: true };
    this.#table.add(lib, mapping);
    return mapping;
  }

  #advise(mapping: Mapping, advice: number): void {
    if (this.#lib.madvise(mapping.address, mapping.length, advice) !== 0) {
      throw systemError(ErrorCode.PROTECTION_FAILED, 'madvise', this.#lib.errno(), mapping.length);
    }
  }

  /**
   * Maps `length` bytes (after the map headroom check), locks them per the lock policy and advises
   * them out of core dumps and forked children. On any failure it unmaps and rethrows.
   */
  #map(length: number): Mapping {
    const lib = this.#lib;
    mapBudget.assertHeadroom();
    const secret = this.mode === 'secret-memory';
    const mapping = secret ? this.#mapSecret(length) : this.#mapAnonymous(length);
    try {
      if (!secret) {
        if (lib.mlock(mapping.address, length) === 0) mapping.locked = true;
        else if (this.lock === 'require') throw lockError('mlock', lib.errno(), length);
      }
      this.#advise(mapping, MADV_DONTDUMP);
      // MADV_WIPEONFORK applies to private anonymous memory only (EINVAL on shared secret memory),
      // so secret memory is kept out of children with MADV_DONTFORK instead.
      this.#advise(mapping, secret ? MADV_DONTFORK : MADV_WIPEONFORK);
    } catch (error) {
      this.#table.release(lib, mapping);
      throw error;
    }
    return mapping;
  }

  /**
   * Maps, locks, advises, fills and protects one secret (with slab packing: places it in a slot).
   * On any failure it zero-fills what `fill` may have written, releases what it took, and rethrows;
   * the other secrets are untouched.
   */
  protected allocate(size: number, fill: RegionFill): SecretRegion {
    try {
      return this.#allocate(size, fill);
    } catch (error) {
      // Memory a terminated worker thread left locked or mapped may be what is missing: release it and try once more.
      if (!isSecureMemoryError(error, ErrorCode.MEMLOCK_LIMIT) && !isSecureMemoryError(error, ErrorCode.MAP_LIMIT)) throw error;
      if (reapDeadThreads(this.#lib) === 0) throw error;
      return this.#allocate(size, fill);
    }
  }

  #allocate(size: number, fill: RegionFill): SecretRegion {
    const lib = this.#lib;
    this.#table.retryDeferred(lib);
    if (this.#slabs !== undefined) return this.#slabs.allocate(size, fill);
    const length = Math.ceil(size / lib.pageSize) * lib.pageSize;
    const mapping = this.#map(length);
    let view: Uint8Array | undefined;
    try {
      view = this.#table.viewAt(lib, mapping.address, size);
      fill(view);
      if (lib.mprotect(mapping.address, length, PROT_NONE) !== 0) {
        throw systemError(ErrorCode.PROTECTION_FAILED, 'mprotect', lib.errno(), length);
      }
    } catch (error) {
      view?.fill(0);
      this.#table.release(lib, mapping);
      throw error;
    }
    return new ProtectedRegion(lib, this.#table, mapping, size, view);
  }

  /**
   * Locked bytes, live mappings, mapped bytes, mappings left unlocked (best-effort) and unmaps
   * waiting for a retry; with slab packing also `slots`, `slabs` and `pendingWipes`.
   */
  protected backendStats(): MappingStats | (MappingStats & SlabStats) {
    reapDeadThreads(this.#lib); // what terminated workers left (see threads.ts)
    this.#slabs?.flush(); // slabs emptied during this turn are unmapped before they are counted
    const mappings = this.#table.stats();
    return this.#slabs === undefined ? mappings : { ...mappings, ...this.#slabs.stats() };
  }
}

/**
 * Builds a protected-memory factory. It changes nothing process-wide (see `hardenProcess` for that).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object; `ERR_INVALID_ARG_VALUE`
 * for an unknown `secretMemory`, `lock` or `packing` value, or for `secretMemory: 'require'` with `lock: 'best-effort'`.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux, or with `secretMemory: 'require'`
 * where memfd_secret is missing; `ERR_BACKEND_UNAVAILABLE` when koffi or libc cannot be loaded.
 * @example
 * ```ts
 * import { createFactory } from '@secure-memory/protected-memory';
 * const factory = createFactory({ secretMemory: 'auto', lock: 'require' });
 * factory.mode; // 'secret-memory' where the kernel has memfd_secret
 * using key = factory.new(keyBytes); // keyBytes is zeroed
 * // Many small keys under a tight RLIMIT_MEMLOCK: pack them (page-mates are readable during an access).
 * const many = createFactory({ packing: 'slab' });
 * ```
 */
export function createFactory(options?: ProtectedMemoryOptions): ProtectedMemorySecretFactory {
  return new ProtectedMemorySecretFactory(options);
}
