/**
 * The mapping budget. Every `sodium_malloc` adds four mappings; at `vm.max_map_count` libsodium's
 * mmap or mprotect fails, and sodium-native then hands a NULL pointer to Node, which aborts the
 * process (and V8 itself aborts when it can no longer map heap pages). So the backend refuses with
 * `ERR_MAP_LIMIT` while a reserve of mappings is still left for the rest of the process.
 *
 * Counting /proc/self/maps costs a read of the whole file, so it is done only when the credit from
 * the last count is used up: the credit is at most a quarter of the reserve, so mappings that other
 * code adds between two counts stay within the reserve. The budget is shared by every factory in the
 * process. Frees give nothing back until the next count: libsodium unmaps on a later turn of the
 * event loop (see the README), and the count sees exactly what is still mapped.
 * @module
 */
import { ErrorCode, SecureMemoryError, readMapCount, readMaxMapCount } from '@secure-memory/core';
import { BACKEND, MAPPINGS_PER_SECRET } from './native.js';

/** Mappings left to the rest of the process: a sixteenth of `vm.max_map_count`, at least 1024 (4095 of the default 65530). */
export function mapReserve(maxMapCount: number): number {
  return Math.max(1024, Math.floor(maxMapCount / 16));
}

let credit = 0;

/** Builds `ERR_MAP_LIMIT`: `requested` is the map count this allocation would reach, `limit` the ceiling in force. */
export function mapLimitError(count: number, ceiling: number, errno?: number): SecureMemoryError {
  return new SecureMemoryError(
    ErrorCode.MAP_LIMIT,
    `Another secret needs ${MAPPINGS_PER_SECRET} mappings: the process has ${count}, and this backend stops at ${ceiling} (vm.max_map_count minus a reserve for the rest of the process)`,
    { backend: BACKEND, requested: count + MAPPINGS_PER_SECRET, limit: ceiling, ...(errno === undefined ? {} : { errno, syscall: 'mmap' }) },
  );
}

/**
 * Takes the mappings of one allocation from the budget, counting the process's mappings when the
 * credit is used up.
 * @throws {SecureMemoryError} `ERR_MAP_LIMIT` when the allocation would pass the ceiling;
 * `ERR_UNSUPPORTED_PLATFORM` when /proc cannot be read.
 */
export function takeMappings(): void {
  if (credit >= MAPPINGS_PER_SECRET) {
    credit -= MAPPINGS_PER_SECRET;
    return;
  }
  const max = readMaxMapCount();
  const count = readMapCount();
  if (max === undefined || count === undefined) {
    throw new SecureMemoryError(ErrorCode.UNSUPPORTED_PLATFORM, 'The sodium backend needs /proc to keep its mapping budget', {
      backend: BACKEND,
    });
  }
  const reserve = Number.isFinite(max) ? mapReserve(max) : 4096;
  const ceiling = max - reserve;
  const room = ceiling - count;
  if (room < MAPPINGS_PER_SECRET) throw mapLimitError(count, ceiling);
  credit = Math.min(room, Math.floor(reserve / 4)) - MAPPINGS_PER_SECRET;
}

/**
 * After the kernel refused a mapping with `errno`: `ERR_MAP_LIMIT` when the process is at
 * `vm.max_map_count` (the budget is then counted again at the next allocation), else `undefined`.
 */
export function kernelMapLimit(errno: number, enomem: number): SecureMemoryError | undefined {
  if (errno !== enomem) return undefined;
  const max = readMaxMapCount();
  const count = readMapCount();
  if (max === undefined || count === undefined || !Number.isFinite(max) || count + MAPPINGS_PER_SECRET < max) return undefined;
  credit = 0;
  return mapLimitError(count, max - mapReserve(max), errno);
}

