/**
 * The native floor for benchmarks: the system calls a buffer costs, timed in a C loop inside the
 * addon, so that a benchmark can say how far the JavaScript layer is above them.
 * @module
 */
import { ErrorCode } from '@secure-memory/core';
import { assertInRange, systemError } from './errors.js';
import { addon } from './native.js';

/** The most iterations one call runs. */
const MAX_ITERATIONS = 10_000_000;

function assertIterations(iterations: unknown): asserts iterations is number {
  assertInRange(iterations, 'iterations', 1, MAX_ITERATIONS);
}

function result(value: number, syscall: string): number {
  if (value < 0) throw systemError(ErrorCode.PROTECTION_FAILED, syscall, -value);
  return value;
}

/**
 * Nanoseconds per `mprotect(PROT_READ)` + `mprotect(PROT_NONE)` pair on one locked page, in a C loop
 * of `iterations`: the floor under one access of a secret (`withBytes`).
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `iterations` is not a number.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` unless it is a whole number from 1 to 10 000 000.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when a call failed.
 * @example
 * ```ts
 * const floor = floorMprotectPairNs(10_000); // e.g. 600 (ns)
 * ```
 */
export function floorMprotectPairNs(iterations: number): number {
  assertIterations(iterations);
  return result(addon().floorMprotectPair(iterations), 'mprotect');
}

/**
 * Nanoseconds per guarded allocation and free of one data page, in a C loop of `iterations`: mmap
 * of three pages, mprotect, mlock, two madvise, then wipe, munlock and munmap. The floor under
 * `newBuffer(32).destroy()` and `createRandom(32).close()`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `iterations` is not a number.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` unless it is a whole number from 1 to 10 000 000.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when a call failed (for example mlock under a tight RLIMIT_MEMLOCK).
 */
export function floorGuardedAllocNs(iterations: number): number {
  assertIterations(iterations);
  return result(addon().floorGuardedAlloc(iterations), 'mmap');
}
