/**
 * Internal: fault injection for this package's own tests. Not part of the public API: the package's
 * `exports` map does not list it, so it is reachable only by path (src/testing.ts, dist/testing.js).
 *
 * It drives the one seam of the native layer ({@link _setFaultHook}): while installed, every native
 * call of the backend is logged, and an armed fault makes the Nth call of a kind fail with a chosen
 * errno, without making the real call (a failed munmap leaves the mapping in place, a failed mlock
 * leaves the pages as they were, a failed `sodium_mprotect_*` leaves the protection as it was).
 * @internal
 * @module
 */
import { type FaultHook, type FaultPoint, _setFaultHook } from './native.js';

export type { FaultPoint } from './native.js';

/** One armed fault. */
export interface FaultSpec {
  /** The errno the failing call reports. */
  errno: number;
  /** Fail the Nth call of this kind counted from now (1 = the next one). Default 1. */
  nth?: number;
  /** How many calls in a row fail, from the Nth (`Infinity`: every one). Default 1. */
  times?: number;
  /** For `sodium_malloc`: throw an Error carrying `errno`, or return no memory (NULL). Default `'null'`. */
  malloc?: 'throw' | 'null';
}

/** One native call the backend made while the seam was installed. */
export interface CallRecord {
  point: FaultPoint;
  args: readonly unknown[];
  /** True when an injected fault made it fail (the real call was not made). */
  injected: boolean;
  /** What the real call returned: 0 or an errno; for mmap and sodium_malloc, the address of the memory. */
  result?: unknown;
}

interface Armed {
  point: FaultPoint;
  spec: FaultSpec;
  /** Calls of this kind still to let through. */
  skip: number;
  /** Calls of this kind still to fail. */
  left: number;
}

const armed: Armed[] = [];
const log: CallRecord[] = [];

const seam: FaultHook = {
  before(point, args) {
    let fault: FaultSpec | undefined;
    for (const a of armed) {
      if (a.point !== point || a.left <= 0) continue;
      if (a.skip > 0) {
        a.skip -= 1;
      } else if (fault === undefined) {
        a.left -= 1;
        fault = a.spec;
      }
    }
    log.push({ point, args, injected: fault !== undefined });
    if (fault === undefined) return undefined;
    return fault.malloc === undefined ? { errno: fault.errno } : { errno: fault.errno, malloc: fault.malloc };
  },
  after(_point, _args, result) {
    const last = log.at(-1);
    if (last !== undefined) last.result = result;
  },
};

/** Installs the seam: from now on every native call is logged and armed faults apply. */
export function installSeam(): void {
  _setFaultHook(seam);
}

/** Removes the seam (native calls are direct again) and forgets faults and log. */
export function removeSeam(): void {
  _setFaultHook(undefined);
  armed.length = 0;
  log.length = 0;
}

/**
 * Arms a fault: the `spec.nth` call of `point` from now, and the `spec.times - 1` after it, fail with
 * `spec.errno`. Installs the seam if needed.
 */
export function failCall(point: FaultPoint, spec: FaultSpec): void {
  installSeam();
  armed.push({ point, spec, skip: (spec.nth ?? 1) - 1, left: spec.times ?? 1 });
}

/** Disarms every fault (the log goes on). */
export function clearFaults(): void {
  armed.length = 0;
}

/** True while some armed fault has calls left to fail. */
export function faultsPending(): boolean {
  return armed.some((a) => a.left > 0);
}

/** The calls logged since the seam was installed or the log was cleared. */
export function calls(point?: FaultPoint): readonly CallRecord[] {
  return point === undefined ? log.slice() : log.filter((c) => c.point === point);
}
