/**
 * Hooks for this package's own tests. Not part of the API, not exported by the package and not
 * published (package.json's `files` leaves this module out). Importing it switches the package to
 * the test build of the addon (native/extra/build/Release/memguard_test.node, built by the package's
 * build script, never at install), the only build that has the fault seam.
 * @module
 */
import { ErrorCode, SecureMemoryTypeError } from '@secure-memory/core';
import { describeType } from '@secure-memory/core/backend';
import { assertInRange } from './errors.js';
import { type Enclave, enclaveBox } from './enclave.js';
import { flipPreKeyBit, rekeyNow, setKeyStorage } from './key.js';
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { type Addon, packageRoot, useAddon } from './native.js';
import { coolAllWarm } from './box-arena.js';
import { drainPool } from './region.js';
import { forceReclaim, reclaimViews, tombstoneCount } from './views.js';

/** The test build's own calls: the fault seam and the pre-key damage. */
interface SeamAddon extends Addon {
  /** Flips the bits `mask` of one writable byte. */
  xorByte(address: bigint, mask: number): void;
  /** Arms fault injection with no fault; the seamed calls are counted from now. */
  faultArm(): void;
  /**
   * The call `FAULT_CALLS[call]` fails with `errno` (0: is skipped and reports success) after
   * `after` calls, `count` times (negative: every time); arms the seam. 0, or EINVAL.
   */
  faultSet(call: number, errno: number, after: number, count: number): number;
  /** Disarms fault injection and forgets every fault and count. */
  faultClear(): void;
  /** The calls of each kind since the seam was armed, in `FAULT_CALLS` order. */
  faultCounts(): number[];
  /** The kinds of call the seam can make fail. */
  readonly FAULT_CALLS: readonly string[];
}

function loadTestBuild(): SeamAddon {
  const path = join(packageRoot, 'native', 'extra', 'build', 'Release', 'memguard_test.node');
  const lib = createRequire(import.meta.url)(path) as SeamAddon;
  if (lib.TEST_SEAM !== true) throw new Error(`${path} is not the test build`);
  return lib;
}

/** The test build, used by the whole package from now on. */
const seamed = loadTestBuild();
useAddon(seamed);
const addon = (): SeamAddon => seamed;

/** The calls the fault seam of the addon can make fail. */
export type FaultCall =
  | 'mmap'
  | 'munmap'
  | 'mprotect'
  | 'mlock'
  | 'mlock2'
  | 'munlock'
  | 'madvise'
  | 'memfd_secret'
  | 'ftruncate'
  | 'seal'
  | 'open';

/** When an injected fault strikes. */
export interface FaultTiming {
  /** Calls of that kind to let through first (default 0: the next one fails). */
  after?: number;
  /** Calls that fail, from then on (default 1); `Infinity`: every one until {@link clearFaults}. */
  count?: number;
}

function faultIndex(call: unknown): number {
  if (typeof call !== 'string') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "call" argument must be a string. Received ${describeType(call)}`);
  }
  const index = addon().FAULT_CALLS.indexOf(call);
  if (index === -1) throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, 'The "call" argument is not a call the fault seam knows');
  return index;
}

function wholeNumber(value: unknown, label: string, min: number, infinite: boolean): number {
  if (typeof value !== 'number') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${label}" argument must be a number. Received ${describeType(value)}`);
  }
  if (infinite && value === Number.POSITIVE_INFINITY) return value;
  assertInRange(value, label, min, Number.MAX_SAFE_INTEGER);
  return value;
}

/**
 * Makes the addon's next `call` (after `timing.after` of them) fail with `errno`, `timing.count`
 * times, as the system would: mmap returns MAP_FAILED, the others -1, with errno set (`seal` and
 * `open` fail as OpenSSL failing would; `open` with `EBADMSG` as a tag that does not match).
 * `errno` 0 is accepted for `madvise` only: the advice is skipped and reported as given (a kernel
 * that ignores it; the core-dump control test uses it). Arms the seam, which then also counts calls.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` or `ERR_INVALID_ARG_VALUE` (an unknown call) / {RangeError} `ERR_OUT_OF_RANGE` for bad arguments.
 */
function setFault(call: FaultCall, errno: number, timing: FaultTiming = {}): void {
  const index = faultIndex(call);
  wholeNumber(errno, 'errno', call === 'madvise' ? 0 : 1, false);
  const after = wholeNumber(timing.after ?? 0, 'after', 0, false);
  const count = wholeNumber(timing.count ?? 1, 'count', 1, true);
  addon().faultSet(index, errno, after, count === Number.POSITIVE_INFINITY ? -1 : count);
}

/** Arms the seam without a fault: from now on it counts the calls of each kind ({@link faultCalls}). */
function countCalls(): void {
  addon().faultArm();
}

/** The calls of each kind made since the seam was armed (all 0 when it is not). */
function faultCalls(): Record<FaultCall, number> {
  const lib = addon();
  const counts = lib.faultCounts();
  return Object.fromEntries(lib.FAULT_CALLS.map((name, i) => [name, counts[i] ?? 0])) as Record<FaultCall, number>;
}

/** Disarms the seam: every call is made again, nothing is counted. */
function clearFaults(): void {
  addon().faultClear();
}

/**
 * @internal Test hooks: damage the process key as a read-out with one bit error would see it, re-key
 * now, reach an Enclave's ciphertext to tamper with it, choose where the next key lives, drain the
 * pool, and inject faults into the addon's system calls.
 */
export const testHooks: Readonly<{
  /** Flips bit `bit` (0 to 131071) of the pre-key and drops the derived key. */
  flipPreKeyBit(bit: number): void;
  /** Re-randomises the key's parts now (the key does not change). */
  rekeyNow(): void;
  /** The live ciphertext box of an Enclave: `[nonce: 12][ciphertext][tag: 16]`. */
  enclaveBox(enclave: Enclave): Uint8Array;
  /** Where the next key keeps its state: `'locked-memory'` forces the fallback; `'auto'` is the default. */
  setKeyStorage(storage: 'auto' | 'locked-memory'): void;
  /** Gives back warm regions, unmaps every free mapping of the pool (and retries failed munmaps); returns how many. */
  drainPool(): number;
  /** Gives back the regions enclave-mode secrets keep warm (they become tombstones until V8 releases their views). */
  coolWarm(): number;
  /**
   * Collects garbage, lets V8 release the views it can, and
   * frees their tombstones; then revokes (detaches) the views of the tombstones left, when `force`.
   * Returns the tombstones left.
   */
  settleViews(force?: boolean): Promise<number>;
  /** Makes the addon's `call` fail with `errno` (see the module source). */
  setFault(call: FaultCall, errno: number, timing?: FaultTiming): void;
  /** Arms the fault seam to count calls, without a fault. */
  countCalls(): void;
  /** Calls of each kind since the seam was armed. */
  faultCalls(): Record<FaultCall, number>;
  /** Disarms the fault seam. */
  clearFaults(): void;
  /** The calls the seam knows. */
  faultCallNames(): readonly FaultCall[];
}> = Object.freeze({
  flipPreKeyBit: (bit: number) => flipPreKeyBit(bit, (address, mask) => seamed.xorByte(address, mask)),
  rekeyNow,
  enclaveBox,
  setKeyStorage,
  drainPool,
  coolWarm: coolAllWarm,
  settleViews: async (force = false) => {
    // The collector, without --expose-gc on the command line (which worker threads refuse to inherit).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // V8 frees backing stores on a background thread after a collection, and Node reports each on a
    // later turn of the event loop: wait until every tombstone is released, or a while.
    let left = tombstoneCount();
    for (let i = 0, still = 0; i < 100 && left > 0 && still < 10; i += 1) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, i < 5 ? 0 : 2));
      reclaimViews(seamed);
      const now = tombstoneCount();
      still = now === left ? still + 1 : 0;
      left = now;
    }
    if (force) forceReclaim(seamed, 0);
    return tombstoneCount();
  },
  setFault,
  countCalls,
  faultCalls,
  clearFaults,
  faultCallNames: () => addon().FAULT_CALLS as readonly FaultCall[],
});
