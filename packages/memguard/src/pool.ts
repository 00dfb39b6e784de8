/**
 * The pool of guarded mappings that leased regions go back to (wiped), so that opening an Enclave
 * costs no mmap or mlock: bounded per size class and in locked bytes.
 * @module
 */
import { type Mapping, pendingUnmapCount, retryUnmaps, unmapMapping } from './mapping.js';
import { addon } from './native.js';

/** Free mappings a size class may keep. */
export const POOL_MAX_PER_CLASS = 16;
/** Locked bytes the pool may keep in free mappings, over every size class. */
export const POOL_MAX_BYTES = 4 * 1024 * 1024;

/** Counters of the pool of guarded mappings that leased regions return to. */
export interface PoolStats {
  /** Free mappings kept, ready to be leased. */
  free: number;
  /** Bytes locked by the free mappings (their inner pages). */
  freeLockedBytes: number;
  /** Leases served by a free mapping (no mmap, no mlock). */
  hits: number;
  /** Leases that had to map a new mapping. */
  misses: number;
  /** Mappings given back to the pool, wiped. */
  returned: number;
  /** Mappings unmapped instead of kept: the pool was full, the canary was damaged, or it was drained. */
  discarded: number;
  /**
   * Mappings of the whole process (buffers, secrets, the pool, the key state) whose munmap failed:
   * wiped, `PROT_NONE`, unlocked, and unmapped again at the next allocation, drain or purge.
   * Normally 0.
   */
  pendingUnmaps: number;
}

/**
 * The pool: free mappings by size class (inner length), wiped (zero data, canary slack intact),
 * locked, read-write (nothing secret is in them), between their guard pages. Bounded by
 * {@link POOL_MAX_PER_CLASS} and {@link POOL_MAX_BYTES}; drained by purge, at exit, and whenever
 * a new mapping is refused by RLIMIT_MEMLOCK or the mapping limit.
 */
class Pool {
  readonly #free = new Map<number, Mapping[]>();
  readonly stats: Omit<PoolStats, 'pendingUnmaps'> = { free: 0, freeLockedBytes: 0, hits: 0, misses: 0, returned: 0, discarded: 0 };

  take(innerLength: number): Mapping | undefined {
    const map = this.#free.get(innerLength)?.pop();
    if (map === undefined) {
      this.stats.misses += 1;
      return undefined;
    }
    this.stats.hits += 1;
    this.stats.free -= 1;
    this.stats.freeLockedBytes -= innerLength;
    return map;
  }

  accepts(innerLength: number): boolean {
    return (
      (this.#free.get(innerLength)?.length ?? 0) < POOL_MAX_PER_CLASS &&
      this.stats.freeLockedBytes + innerLength <= POOL_MAX_BYTES
    );
  }

  give(map: Mapping): void {
    let list = this.#free.get(map.innerLength);
    if (list === undefined) {
      list = [];
      this.#free.set(map.innerLength, list);
    }
    list.push(map);
    this.stats.free += 1;
    this.stats.freeLockedBytes += map.innerLength;
    this.stats.returned += 1;
  }

  /** Unmaps every free mapping (and retries failed munmaps); returns how many. */
  drain(): number {
    if (pendingUnmapCount() > 0) retryUnmaps(addon());
    if (this.stats.free === 0) return 0;
    const lib = addon();
    let count = 0;
    for (const list of this.#free.values()) {
      for (const map of list.splice(0)) {
        unmapMapping(lib, map);
        count += 1;
      }
    }
    this.stats.free = 0;
    this.stats.freeLockedBytes = 0;
    this.stats.discarded += count;
    return count;
  }
}

/** The process's pool. */
export const pool = new Pool();

/** The pool's counters. */
export function poolStats(): PoolStats {
  return { ...pool.stats, pendingUnmaps: pendingUnmapCount() };
}
