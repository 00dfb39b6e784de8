/**
 * `@secure-memory/memguard/bench`: the native floors for benchmarks. A floor makes a given sequence
 * of system calls on one anonymous mapping in a C loop and times the loop, so that `secure-memory
 * bench` can measure each operation against exactly the same work in C: the protection pair and a
 * read of every page for an access, each backend's own allocation and free for new+close. The
 * interpreter lives in a separate development addon (native/extra/floors.cc: `memguard_bench`),
 * built by the package's build script and never at install: what users install has no benchmark
 * code. Importing this module loads that addon and throws `ERR_BACKEND_UNAVAILABLE` when it was
 * not built.
 * @module
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ErrorCode, SecureMemoryError, SecureMemoryTypeError } from '@secure-memory/core';
import { BACKEND, assertInRange, systemError } from './errors.js';
import { packageRoot } from './native.js';

/** The most iterations one run makes. */
const MAX_ITERATIONS = 10_000_000;
/** The largest mapping a script may make, in pages. */
const MAX_PAGES = 4096;
/** The most bytes one `write`, `sealBytes` or `openBytes` step covers. */
const MAX_BYTES = 4096;
/** The most steps in one part of a script. */
const MAX_STEPS = 64;

/** A protection, as mprotect(2) takes it. */
export type FloorProtection = 'none' | 'read' | 'readwrite';
/** An advice of madvise(2) a floor may give. */
export type FloorAdvice = 'dontdump' | 'dodump' | 'wipeonfork' | 'dontfork';

/**
 * One step of a floor. Pages count from the start of the script's one mapping; `write` copies a
 * fixed pattern in, `wipe` zeroes with explicit_bzero, `read` reads one byte of each page; `seal`
 * encrypts the pages in place with ChaCha20-Poly1305 (OpenSSL, memguard's cipher, a fixed key and
 * nonce: not a secret) and keeps the tag, `open` decrypts them into the pages from `to` and checks
 * the tag of the last seal, `sealTo` encrypts them into the pages from `to`; `sealBytes` and
 * `openBytes` do the same on `bytes` bytes at byte offsets (at most 4096), for a small secret's box.
 * `write` covers at most 4096 bytes, `wipe` any part of the mapping.
 */
export type FloorStep =
  | { readonly call: 'mmap'; readonly pages: number; readonly prot: FloorProtection }
  | { readonly call: 'munmap' }
  | { readonly call: 'mprotect'; readonly page: number; readonly pages: number; readonly prot: FloorProtection }
  | { readonly call: 'mlock' | 'munlock'; readonly page: number; readonly pages: number }
  | { readonly call: 'madvise'; readonly page: number; readonly pages: number; readonly advice: FloorAdvice }
  | { readonly call: 'write' | 'wipe'; readonly offset: number; readonly bytes: number }
  | { readonly call: 'read'; readonly page: number; readonly pages: number }
  | { readonly call: 'seal'; readonly page: number; readonly pages: number }
  | { readonly call: 'open' | 'sealTo'; readonly page: number; readonly pages: number; readonly to: number }
  | { readonly call: 'sealBytes'; readonly offset: number; readonly bytes: number }
  | { readonly call: 'openBytes'; readonly offset: number; readonly bytes: number; readonly to: number };

/** A floor: the prologue once, the body per iteration (timed), the epilogue once. */
export interface FloorScript {
  readonly prologue?: readonly FloorStep[];
  readonly body: readonly FloorStep[];
  readonly epilogue?: readonly FloorStep[];
}

/** The time the body's loop took. */
export interface FloorTiming {
  /** Wall-clock nanoseconds (CLOCK_MONOTONIC). */
  wallNs: number;
  /** This thread's CPU nanoseconds (CLOCK_THREAD_CPUTIME_ID): user and system time. */
  cpuNs: number;
}

interface FloorAddon {
  run(prologue: Int32Array, body: Int32Array, epilogue: Int32Array, iterations: number, out: Float64Array): number;
  threadCpuNs(): number;
  PAGE_SIZE: number;
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

/** The page size the floors map with. */
export const FLOOR_PAGE_SIZE: number = floors.PAGE_SIZE;

const CODE = { mmap: 0, munmap: 1, mprotect: 2, mlock: 3, munlock: 4, madvise: 5, write: 6, wipe: 7, read: 8, seal: 9, open: 10, sealBytes: 11, openBytes: 12, sealTo: 13 } as const;
const PROT: Record<FloorProtection, number> = { none: 0, read: 1, readwrite: 3 };
const ADVICE: Record<FloorAdvice, number> = { dontdump: 16, dodump: 17, wipeonfork: 18, dontfork: 10 };

function invalid(label: string, why: string): never {
  throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The floor script's ${label} is invalid: ${why}`);
}

/**
 * Encodes one part of a script, following the mapping from `mapped` pages (0: none): every step
 * must stay inside the mapping. Returns the encoded steps and the pages mapped after them.
 */
function encode(steps: readonly FloorStep[] | undefined, label: string, mapped: number): { code: Int32Array; mapped: number } {
  const list = steps ?? [];
  if (!Array.isArray(list) || list.length > MAX_STEPS) invalid(label, `at most ${MAX_STEPS} steps`);
  const code = new Int32Array(list.length * 4);
  list.forEach((step: FloorStep, i) => {
    if (typeof step !== 'object' || step === null) invalid(`${label}[${i}]`, 'not an object');
    const at = `${label}[${i}]`;
    const bytes = (offset: number, count: number, most = MAX_BYTES): void => {
      assertInRange(offset, `${at}.offset`, 0, MAX_PAGES * FLOOR_PAGE_SIZE);
      assertInRange(count, `${at}.bytes`, 0, most);
      if (mapped === 0 || offset + count > mapped * FLOOR_PAGE_SIZE) invalid(at, 'the bytes are outside the mapping');
    };
    const pages = (page: number, count: number): void => {
      assertInRange(page, `${at}.page`, 0, MAX_PAGES - 1);
      assertInRange(count, `${at}.pages`, 1, MAX_PAGES);
      if (mapped === 0 || page + count > mapped) invalid(at, `pages ${page}..${page + count - 1} are outside the mapping of ${mapped} pages`);
    };
    let a = 0;
    let b = 0;
    let c = 0;
    switch (step.call) {
      case 'mmap':
        if (mapped !== 0) invalid(at, 'the mapping exists already');
        assertInRange(step.pages, `${at}.pages`, 1, MAX_PAGES);
        if (!Object.hasOwn(PROT, step.prot)) invalid(at, 'unknown protection');
        [a, b, mapped] = [step.pages, PROT[step.prot], step.pages];
        break;
      case 'munmap':
        if (mapped === 0) invalid(at, 'nothing is mapped');
        [a, b, mapped] = [0, mapped, 0];
        break;
      case 'mprotect':
        pages(step.page, step.pages);
        if (!Object.hasOwn(PROT, step.prot)) invalid(at, 'unknown protection');
        [a, b, c] = [step.page, step.pages, PROT[step.prot]];
        break;
      case 'madvise':
        pages(step.page, step.pages);
        if (!Object.hasOwn(ADVICE, step.advice)) invalid(at, 'unknown advice');
        [a, b, c] = [step.page, step.pages, ADVICE[step.advice]];
        break;
      case 'mlock':
      case 'munlock':
      case 'read':
      case 'seal':
        pages(step.page, step.pages);
        [a, b] = [step.page, step.pages];
        break;
      case 'open':
      case 'sealTo':
        pages(step.page, step.pages);
        pages(step.to, step.pages);
        [a, b, c] = [step.page, step.pages, step.to];
        break;
      case 'wipe':
        bytes(step.offset, step.bytes, MAX_PAGES * FLOOR_PAGE_SIZE);
        [a, b] = [step.offset, step.bytes];
        break;
      case 'write':
      case 'sealBytes':
        bytes(step.offset, step.bytes);
        [a, b] = [step.offset, step.bytes];
        break;
      case 'openBytes':
        bytes(step.offset, step.bytes);
        bytes(step.to, step.bytes);
        [a, b, c] = [step.offset, step.bytes, step.to];
        break;
      default:
        invalid(at, `unknown call ${String((step as { call?: unknown }).call)}`);
    }
    code.set([CODE[(step as FloorStep).call], a, b, c], i * 4);
  });
  return { code, mapped };
}

/**
 * Runs a floor script: the prologue, then the body `iterations` times in a C loop, then the
 * epilogue; returns the time of the body's loop. The body must leave the mapping as it found it.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when the script is malformed or leaves its mapping.
 * @throws {RangeError} `ERR_OUT_OF_RANGE` for iterations outside 1 to 10 000 000, or pages out of range.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` when a call failed (with its errno; EBADMSG: an `open` whose tag did not match).
 * @example
 * ```ts
 * import { runFloor } from '@secure-memory/memguard/bench';
 * const access = { prologue: [{ call: 'mmap', pages: 1, prot: 'none' }], epilogue: [{ call: 'munmap' }],
 *   body: [{ call: 'mprotect', page: 0, pages: 1, prot: 'read' }, { call: 'read', page: 0, pages: 1 }, { call: 'mprotect', page: 0, pages: 1, prot: 'none' }] } as const;
 * const { cpuNs } = runFloor(access, 1000); // per access: cpuNs / 1000
 * ```
 */
export function runFloor(script: FloorScript, iterations: number): FloorTiming {
  if (typeof script !== 'object' || script === null) invalid('script', 'not an object');
  assertInRange(iterations, 'iterations', 1, MAX_ITERATIONS);
  const prologue = encode(script.prologue, 'prologue', 0);
  const body = encode(script.body, 'body', prologue.mapped);
  if (body.mapped !== prologue.mapped) invalid('body', 'it must leave the mapping as it found it');
  const epilogue = encode(script.epilogue, 'epilogue', body.mapped);
  if (epilogue.mapped !== 0) invalid('epilogue', 'it must unmap the mapping');
  const out = new Float64Array(2);
  const status = floors.run(prologue.code, body.code, epilogue.code, iterations, out);
  if (status < 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'floor', -status);
  return { wallNs: out[0] as number, cpuNs: out[1] as number };
}

/** This thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME_ID), for timing JavaScript the way the floors are timed. */
export function threadCpuNs(): number {
  return floors.threadCpuNs();
}
