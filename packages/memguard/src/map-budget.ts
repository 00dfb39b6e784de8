/**
 * Keeps the process clear of `vm.max_map_count` (core's {@link MapBudget}). A buffer is three
 * mappings (guard, inner pages, guard: their protections or lock flags differ, so the kernel cannot
 * merge them).
 * @module
 */
import { MapBudget } from '@secure-memory/core/backend';
import { BACKEND } from './errors.js';

/** Mappings one buffer takes. */
export const MAPPINGS_PER_BUFFER = 3;

/** One budget for every buffer of this package in the process. */
export const mapBudget = new MapBudget(BACKEND, MAPPINGS_PER_BUFFER);
