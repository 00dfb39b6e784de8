/**
 * `@secure-memory/memguard/bench`: the native floor for benchmarks: the system calls a buffer costs,
 * timed in a C loop, so that a benchmark can say how far the JavaScript layer is above them. The
 * loops live in a separate development addon (native/extra: `memguard_bench`), built by the package's
 * build script and never at install: the addon users install has no benchmark code. Importing this
 * module loads that addon and throws `ERR_BACKEND_UNAVAILABLE` when it was not built.
 * @module
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { BACKEND, assertInRange, systemError } from './errors.js';
import { packageRoot } from './native.js';

/** The most iterations one call runs. */
const MAX_ITERATIONS = 10_000_000;

interface FloorAddon {
  /** ns per mprotect PROT_READ + PROT_NONE pair on one page, or a negative errno. */
  floorMprotectPair(iterations: number): number;
  /** ns per guarded allocation and free of one page, or a negative errno. */
  floorGuardedAlloc(iterations: number): number;
}

function loadFloors(): FloorAddon {
  const path = join(packageRoot, 'native', 'extra', 'build', 'Release', 'memguard_bench.node');
  try {
    return createRequire(import.meta.url)(path) as FloorAddon;
  } catch (cause) {
    throw new SecureMemoryError(
      ErrorCode.BACKEND_UNAVAILABLE,
      'The benchmark floors are built only in a development build of @secure-memory/memguard (npm run build in the package)',
      { backend: BACKEND, cause },
    );
  }
}

const floors = loadFloors();

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
 * import { floorMprotectPairNs } from '@secure-memory/memguard/bench';
 * const floor = floorMprotectPairNs(10_000); // e.g. 600 (ns)
 * ```
 */
export function floorMprotectPairNs(iterations: number): number {
  assertIterations(iterations);
  return result(floors.floorMprotectPair(iterations), 'mprotect');
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
  return result(floors.floorGuardedAlloc(iterations), 'mmap');
}
