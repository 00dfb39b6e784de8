/**
 * Keeps the process clear of `vm.max_map_count`. Each secret is its own mapping (private anonymous
 * mappings that were locked and faulted separately do not merge; secret-memory files never do), so
 * tens of thousands of secrets could take every mapping the kernel allows, and the next mmap of V8
 * or of a native module would then abort the process. Allocations therefore stop with
 * `ERR_MAP_LIMIT` while a reserve of mappings is left for the rest of the process.
 * @module
 */
import { ErrorCode, SecureMemoryError, readMapCount, readMaxMapCount } from '@secure-memory/core';
import { BACKEND } from './errors.js';

/** Mappings left for the rest of the process: an eighth of `vm.max_map_count`, at least 1024. */
export function mapReserve(max: number): number {
  return Math.max(1024, Math.floor(max / 8));
}

/** Live mappings of every protected-memory factory in this process. */
let live = 0;
/** The live count at which /proc/self/maps is read again. */
let nextCheck = 0;

/**
 * Checks, before one more mapping, that the process keeps its reserve. Reading /proc/self/maps is
 * costly with many mappings, so it is read again only after half of the remaining headroom could
 * have been used by this backend.
 * @throws {SecureMemoryError} `ERR_MAP_LIMIT` with `requested` (the mappings there would be) and `limit`
 * (`vm.max_map_count` minus the reserve).
 */
export function assertMapHeadroom(): void {
  if (live < nextCheck) return;
  const count = readMapCount();
  const max = readMaxMapCount();
  if (count === undefined || max === undefined || !Number.isFinite(max)) {
    nextCheck = Number.POSITIVE_INFINITY; // nothing to read here: leave it to the kernel
    return;
  }
  const limit = max - mapReserve(max);
  const headroom = limit - count;
  if (headroom < 1) {
    throw new SecureMemoryError(
      ErrorCode.MAP_LIMIT,
      `Too many mappings: ${count} of vm.max_map_count ${max}, of which ${mapReserve(max)} are kept for the rest of the process`,
      { backend: BACKEND, requested: count + 1, limit },
    );
  }
  nextCheck = live + Math.max(1, Math.floor(headroom / 2));
}

/** Counts a mapping made. */
export function mappingAdded(): void {
  live += 1;
}

/** Counts a mapping released. */
export function mappingRemoved(): void {
  live -= 1;
}
