/**
 * Keeps the process clear of `vm.max_map_count` (core's {@link MapBudget}). Each secret, and each
 * slab, is its own mapping (private anonymous mappings that were locked and faulted separately do
 * not merge; secret-memory files never do).
 * @module
 */
import { MapBudget } from '@secure-memory/core/backend';
import { BACKEND } from './errors.js';

/** One budget for every protected-memory factory of this thread; it counts the process's mappings (/proc/self/maps), so every thread's budget sees the others'. */
export const mapBudget = new MapBudget(BACKEND, 1);
