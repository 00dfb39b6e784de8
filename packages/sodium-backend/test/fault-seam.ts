/**
 * Fault injection for this package's tests, kept out of the shipped code (it replaced the hook that
 * src/native.ts used to consult on every call). `faultyNative(real)` builds the backend's native
 * layer with `createNative` over a wrapped sodium-native and a wrapped libc, as protected-memory's
 * tests wrap its libc module; a test installs it with
 * `vi.mock('../src/native.ts', async (importOriginal) => faultyModule(await importOriginal()))`.
 *
 * While installed, every native call of the backend is logged, and an armed fault makes the Nth call
 * of a kind fail with a chosen errno, without making the real call (a failed munmap leaves the
 * mapping in place, a failed mlock leaves the pages as they were, a failed `sodium_mprotect_*`
 * leaves the protection as it was).
 */
import { createRequire } from 'node:module';
import { type Libc, libc } from '@secure-memory/system';
import type { Native, Protection, SodiumBuffer, SodiumNative } from '../src/native.ts';

/** The native calls a fault can hit (`mprotect` is the libc call behind a failed `sodium_mprotect`). */
export type FaultPoint = 'mmap' | 'munmap' | 'sodium_malloc' | 'sodium_mprotect' | 'mprotect' | 'mlock' | 'munlock' | 'madvise';

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
let installed = false;

/** Logs a call about to be made and returns the fault to inject, if one is armed for it. */
function before(point: FaultPoint, args: readonly unknown[]): FaultSpec | undefined {
  if (!installed) return undefined;
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
  return fault;
}

/** Records what the real call returned, on the call just logged. */
function after<T>(result: T): T {
  const last = log.at(-1);
  if (installed && last !== undefined) last.result = result;
  return result;
}

/** Installs the seam: from now on every native call is logged and armed faults apply. */
export function installSeam(): void {
  installed = true;
}

/** Removes the seam (native calls are direct again) and forgets faults and log. */
export function removeSeam(): void {
  installed = false;
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

/** libc, with the calls the backend's native layer makes going through the seam. */
function faultyLibc(real: Libc): Libc {
  let injectedErrno: number | undefined;
  /** A call returning 0 or -1: -1 with the injected errno, or the real call. */
  const status =
    (point: FaultPoint, f: (...args: never[]) => number) =>
    (...args: never[]): number => {
      const fault = before(point, args);
      if (fault !== undefined) {
        injectedErrno = fault.errno;
        return -1;
      }
      injectedErrno = undefined;
      const result = f(...args);
      after(result === 0 ? 0 : real.errno());
      return result;
    };
  return {
    ...real,
    mmap(length, prot, flags, fd) {
      const fault = before('mmap', [length, prot, flags, fd]);
      if (fault !== undefined) {
        injectedErrno = fault.errno;
        return real.mapFailed;
      }
      injectedErrno = undefined;
      return after(real.mmap(length, prot, flags, fd));
    },
    munmap: status('munmap', real.munmap),
    mprotect: status('mprotect', real.mprotect),
    mlock: status('mlock', real.mlock),
    munlock: status('munlock', real.munlock),
    madvise: status('madvise', real.madvise),
    errno: () => injectedErrno ?? real.errno(),
  };
}

/** sodium-native, with `sodium_mprotect_*` going through the seam (an injected fault throws as sodium-native does). */
function faultySodium(real: SodiumNative): SodiumNative {
  const protect =
    (protection: Protection, f: (buf: SodiumBuffer) => void) =>
    (buf: SodiumBuffer): void => {
      if (before('sodium_mprotect', [buf, protection]) !== undefined) {
        throw new Error(protection === 'noaccess' ? 'failed to lock buffer' : 'failed to unlock buffer');
      }
      f(buf);
    };
  return {
    sodium_malloc: (size) => real.sodium_malloc(size),
    sodium_free: (buf) => real.sodium_free(buf),
    sodium_memzero: (view) => real.sodium_memzero(view),
    sodium_mprotect_noaccess: protect('noaccess', (buf) => real.sodium_mprotect_noaccess(buf)),
    sodium_mprotect_readonly: protect('readonly', (buf) => real.sodium_mprotect_readonly(buf)),
    sodium_mprotect_readwrite: protect('readwrite', (buf) => real.sodium_mprotect_readwrite(buf)),
  };
}

type NativeModule = typeof import('../src/native.ts');

/**
 * The native module with its `native()` replaced by one whose calls go through the seam. The real
 * `native()` runs first (same platform checks, same load errors).
 */
export function faultyModule(real: NativeModule): NativeModule {
  let made: Native | undefined;
  const native = (): Native => {
    if (made !== undefined) return made;
    const inner = real.native();
    const sodium = createRequire(import.meta.url)('sodium-native') as SodiumNative;
    const n = real.createNative(faultySodium(sodium), faultyLibc(libc('sodium')), false);
    made = {
      ...n,
      // a map can be refused whenever the seam may inject it (as the kernel may, where the address space is limited)
      mapMayFail: () => installed || inner.mapMayFail(),
      malloc(size) {
        const fault = before('sodium_malloc', [size]);
        if (fault?.malloc === 'throw') throw Object.assign(new Error('sodium_malloc failed'), { errno: fault.errno });
        if (fault !== undefined) return fault.errno;
        const result = n.malloc(size);
        if (typeof result === 'number') return after(result);
        after(n.address(result.buf));
        // libsodium's own mlock and madvise are not seen by the seam: never take them as quiet under it
        return { buf: result.buf, quiet: result.quiet && !installed };
      },
    };
    return made;
  };
  return { ...real, native };
}
