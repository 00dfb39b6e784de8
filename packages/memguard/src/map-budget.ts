/**
 * Keeps the process clear of `vm.max_map_count`. A buffer is three mappings (guard, inner pages,
 * guard: their protections or lock flags differ, so the kernel cannot merge them), and a process
 * whose mappings run out aborts the next time V8 or a native module maps memory. Allocations
 * therefore stop with `ERR_MAP_LIMIT` while a reserve is left for the rest of the process.
 * @module
 */
import { ErrorCode, SecureMemoryError, readMapCount, readMaxMapCount } from '@secure-memory/core';
import { BACKEND } from './errors.js';

/** Mappings one buffer takes. */
export const MAPPINGS_PER_BUFFER = 3;

/** Mappings left for the rest of the process: an eighth of `vm.max_map_count`, at least 1024. */
export function mapReserve(max: number): number {
  return Math.max(1024, Math.floor(max / 8));
}

/** Mappings held by this package's buffers now. */
let live = 0;
/** The live count at which /proc/self/maps is read again. */
let nextCheck = 0;

/**
 * Checks, before a buffer is mapped, that the process keeps its reserve. Reading /proc/self/maps
 * costs more the more mappings there are, so it is read again only once half of the headroom seen
 * last time could have been used by this package.
 * @throws {SecureMemoryError} `ERR_MAP_LIMIT` with `requested` (the mappings there would be) and
 * `limit` (`vm.max_map_count` minus the reserve).
 */
export function assertMapHeadroom(): void {
  if (live < nextCheck) return;
  const count = readMapCount();
  const max = readMaxMapCount();
  if (count === undefined || max === undefined || !Number.isFinite(max)) {
    nextCheck = Number.POSITIVE_INFINITY; // nothing to read: leave it to the kernel
    return;
  }
  const limit = max - mapReserve(max);
  const headroom = limit - count;
  if (headroom < MAPPINGS_PER_BUFFER) {
    throw new SecureMemoryError(
      ErrorCode.MAP_LIMIT,
      `Too many mappings: ${count} of vm.max_map_count ${max}, of which ${mapReserve(max)} are kept for the rest of the process`,
      { backend: BACKEND, requested: count + MAPPINGS_PER_BUFFER, limit },
    );
  }
  nextCheck = live + Math.max(MAPPINGS_PER_BUFFER, Math.floor(headroom / 2));
}

/** Counts a buffer mapped. */
export function bufferMapped(): void {
  live += MAPPINGS_PER_BUFFER;
}

/** Counts a buffer unmapped. */
export function bufferUnmapped(): void {
  live -= MAPPINGS_PER_BUFFER;
}
