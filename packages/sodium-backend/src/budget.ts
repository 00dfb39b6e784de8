/**
 * The mapping budget: core's {@link MapBudget}, one per process (counted from /proc/self/maps, so
 * shared by every thread and backend). Every `sodium_malloc` adds four mappings; at
 * `vm.max_map_count` libsodium's mmap or mprotect fails, and sodium-native then hands a NULL pointer
 * to Node, which aborts the process (and V8 itself aborts when it can no longer map heap pages). So
 * the backend refuses with `ERR_MAP_LIMIT` while a reserve of mappings is still left for the rest of
 * the process. A free gives its mappings back once libsodium has unmapped them (on a later turn of
 * the event loop, see the README); the next count sees exactly what is still mapped.
 * @module
 */
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { MapBudget, mapReserve, readMapCount, readMaxMapCount } from '@secure-memory/core/backend';
import { BACKEND, MAPPINGS_PER_SECRET } from './native.js';

const budget = new MapBudget(BACKEND, MAPPINGS_PER_SECRET);

/** Allocations whose frees libsodium has not run yet (its free runs on a later turn of the event loop). */
let pending = 0;
let scheduled = false;

/**
 * Takes the mappings of one allocation from the budget (whose credit frees give back, see
 * {@link releaseMappings}).
 * @throws {SecureMemoryError} `ERR_MAP_LIMIT` when the allocation would pass the ceiling.
 */
export function takeMappings(): void {
  budget.assertHeadroom();
}

/**
 * After `sodium_free`: the allocation's mappings go back to the budget's credit once libsodium has
 * unmapped them, two turns of the event loop later (sodium-native's finalizer runs on the next one).
 * So a steady rate of new and close never counts /proc/self/maps again (a count costs about 70 ms at
 * 40,000 mappings here); within one synchronous run the frees are still pending, the mappings still
 * there, and the budget counts them when its credit runs out.
 */
export function releaseMappings(): void {
  pending += 1;
  if (scheduled) return;
  scheduled = true;
  setImmediate(() =>
    setImmediate(() => {
      for (; pending > 0; pending -= 1) budget.removed();
      scheduled = false;
    }).unref(),
  ).unref();
}

/**
 * After the kernel refused a mapping with `errno`: `ERR_MAP_LIMIT` when the process is at
 * `vm.max_map_count` (the budget then counts again at the next allocation), else `undefined`.
 */
export function kernelMapLimit(errno: number, enomem: number): SecureMemoryError | undefined {
  if (errno !== enomem) return undefined;
  const max = readMaxMapCount();
  const count = readMapCount();
  if (max === undefined || count === undefined || !Number.isFinite(max) || count + MAPPINGS_PER_SECRET < max) return undefined;
  budget.recount();
  const ceiling = max - mapReserve(max);
  return new SecureMemoryError(
    ErrorCode.MAP_LIMIT,
    `Another secret needs ${MAPPINGS_PER_SECRET} mappings: the process has ${count}, and the kernel's limit is ${max}`,
    { backend: BACKEND, requested: count + MAPPINGS_PER_SECRET, limit: ceiling, errno, syscall: 'mmap' },
  );
}
