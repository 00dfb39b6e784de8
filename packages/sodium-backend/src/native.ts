/**
 * The thin native layer: sodium-native (libsodium) for the secure allocations, and a few libc calls
 * through koffi for what sodium-native does not say (the address of a buffer, whether mlock held,
 * whether an mmap would succeed, the errno of a failed mprotect). Both are loaded on first use, never
 * at import. Every wrapper only calls the system and returns its status; the errno of a failed libc
 * call is captured at once. Every call passes one test seam ({@link _setFaultHook}, driven by
 * src/testing.ts) that can make it fail with a chosen errno; unset, it costs one branch per call.
 * @module
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';

/** The backend's short name, as errors and secrets show it. */
export const BACKEND = 'sodium';

/** Linux architectures whose mmap constants are the generic ones and for which sodium-native ships a prebuild or builds. */
const SUPPORTED_ARCHES: readonly string[] = ['x64', 'arm64', 'arm', 'ia32', 'riscv64', 'ppc64', 's390x', 'loong64'];

/** libsodium's canary: 16 bytes right before the data (`CANARY_SIZE` in utils.c). */
export const CANARY_SIZE = 16;

/** The mappings one `sodium_malloc` adds: base page, leading guard page, unprotected pages, trailing guard page. */
export const MAPPINGS_PER_SECRET = 4;

/** mmap(2) protection: readable. */
const PROT_READ = 1;
/** mmap(2) protection: writable. */
const PROT_WRITE = 2;
/** mmap(2) flag: a private mapping. */
const MAP_PRIVATE = 0x02;
/** mmap(2) flag: not backed by a file (the generic value; the supported architectures share it). */
const MAP_ANONYMOUS = 0x20;
/** madvise(2) advice: leave the range out of core dumps. */
export const MADV_DONTDUMP = 16;
/** errno: no CAP_IPC_LOCK and a zero RLIMIT_MEMLOCK. */
export const EPERM = 1;
/** errno: some of the range could not be locked. */
export const EAGAIN = 11;
/** errno: out of memory, over RLIMIT_MEMLOCK, or at vm.max_map_count. */
export const ENOMEM = 12;

/** A buffer from sodium-native's `sodium_malloc`: a Buffer over an external ArrayBuffer of exactly the size asked for. */
export type SodiumBuffer = Buffer & { secure?: boolean };

/** The protections of `sodium_mprotect_*`. */
export type Protection = 'noaccess' | 'readonly' | 'readwrite';

/** The part of sodium-native this backend calls. Each one throws a plain Error on a bad status. */
interface SodiumNative {
  sodium_malloc(size: number): SodiumBuffer;
  sodium_free(buf: SodiumBuffer): void;
  sodium_mprotect_noaccess(buf: SodiumBuffer): void;
  sodium_mprotect_readonly(buf: SodiumBuffer): void;
  sodium_mprotect_readwrite(buf: SodiumBuffer): void;
  sodium_memzero(buf: ArrayBufferView): void;
}

/**
 * The native calls of the backend, sodium-native's and libc's. The ones that can fail return 0 or
 * the errno, captured at once; none of them throws for a failed system call.
 */
export interface Native {
  /** The system page size in bytes. */
  readonly pageSize: number;
  /** The address of the first byte of a buffer's memory. */
  address(buf: Uint8Array): bigint;
  /**
   * mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS) then munmap: 0 when the
   * kernel would grant the mapping, else the errno of mmap. A probe mapping whose munmap fails twice
   * is kept aside and unmapped by {@link Native.settle} (the next probe, or the next free).
   */
  probeMap(length: number): number;
  /** Unmaps the probe mappings whose munmap failed, if any; returns how many are still left. */
  settle(): number;
  /**
   * Whether an anonymous mapping of a few pages can be refused for want of memory here, so that
   * {@link Native.probeMap} must ask the kernel before each `sodium_malloc` (whose NULL aborts the
   * process): when RLIMIT_AS is finite or `vm.overcommit_memory` is 2 (strict accounting), both read
   * once when the native layer loads; and whenever the test seam is set. Otherwise only the mapping
   * count can refuse one, and the mapping budget keeps a reserve under it.
   */
  mapMayFail(): boolean;
  /**
   * sodium-native's `sodium_malloc(size)`: the buffer, or the errno when libsodium returned no
   * memory (ENOMEM, as libsodium sets it). Throws what sodium-native throws. `quiet` is true when
   * errno stayed 0 through the call: no call libsodium made failed, so its `madvise(MADV_DONTDUMP)`
   * and its `mlock` (whose results it ignores) both held (a successful call never sets errno, and
   * errno is cleared right before). Never quiet while the test seam is set.
   */
  malloc(size: number): { buf: SodiumBuffer; quiet: boolean } | number;
  /** sodium-native's `sodium_free`: detaches the buffer; libsodium frees it on a later turn of the event loop. */
  free(buf: SodiumBuffer): void;
  /**
   * `sodium_mprotect_<protection>(buf)`; when libsodium reports a failure (it keeps no errno for
   * us), the same mprotect on the same pages (`start`, `length`: what libsodium itself protects),
   * to learn the errno and to take a failure that passed. 0 or the errno.
   */
  protect(buf: SodiumBuffer, protection: Protection, start: bigint, length: number): number;
  /** `sodium_memzero`. */
  memzero(view: ArrayBufferView): void;
  /** mlock(address, length): 0 or the errno. */
  mlock(address: bigint, length: number): number;
  /** munlock(address, length): 0 or the errno. */
  munlock(address: bigint, length: number): number;
  /** madvise(address, length, advice): 0 or the errno. */
  madvise(address: bigint, length: number, advice: number): number;
  /** A Uint8Array over `length` bytes of native memory at `address` (no copy; valid while that memory is mapped). */
  view(address: bigint, length: number): Uint8Array;
}

/** The native calls the test seam can make fail (`mprotect` is the libc call behind a failed `sodium_mprotect`). */
export type FaultPoint = 'mmap' | 'munmap' | 'sodium_malloc' | 'sodium_mprotect' | 'mprotect' | 'mlock' | 'munlock' | 'madvise';

/** How an injected fault makes a call fail. */
interface InjectedFault {
  /** The errno the call reports. */
  readonly errno: number;
  /** For `sodium_malloc`: throw (an Error carrying `errno`) or return no memory (NULL). Default `'null'`. */
  readonly malloc?: 'throw' | 'null';
}

/**
 * The test seam: consulted before each native call while set; returns the fault to inject, or
 * `undefined` to make the real call. `result` reports what a real call returned (for call logs).
 */
export interface FaultHook {
  before(point: FaultPoint, args: readonly unknown[]): InjectedFault | undefined;
  after?(point: FaultPoint, args: readonly unknown[], result: unknown): void;
}

let hook: FaultHook | undefined;

/**
 * Internal test seam (see src/testing.ts): sets or clears the hook consulted before every native
 * call. Not exported from the package entry. With no hook set, each call pays one branch.
 * @internal
 */
export function _setFaultHook(next: FaultHook | undefined): void {
  hook = next;
}

type Koffi = (typeof import('koffi'))['default'];
type NativeFunction = (...args: unknown[]) => unknown;

let cached: Native | undefined;
let loadError: SecureMemoryError | undefined;

/** True on the platforms this backend supports: Linux on an architecture with the generic constants. */
function isSupportedPlatform(): boolean {
  return process.platform === 'linux' && SUPPORTED_ARCHES.includes(process.arch);
}

function libcCandidates(): string[] {
  const musl: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
  const arch = musl[process.arch];
  return arch === undefined ? ['libc.so.6'] : ['libc.so.6', `libc.musl-${arch}.so.1`];
}

/** The numeric `errno` a thrown error carries, if any. */
export function errnoOf(error: unknown): number | undefined {
  const errno = typeof error === 'object' && error !== null ? (error as { errno?: unknown }).errno : undefined;
  return typeof errno === 'number' ? errno : undefined;
}

const PROT: Record<Protection, number> = { noaccess: 0, readonly: PROT_READ, readwrite: PROT_READ | PROT_WRITE };

/** What sodium-native throws for a failed `sodium_mprotect_*`, for an injected fault. */
function sodiumMprotectError(protection: Protection): Error {
  return new Error(protection === 'noaccess' ? 'failed to lock buffer' : 'failed to unlock buffer');
}

/**
 * Whether this process can be refused a small anonymous mapping for want of memory: RLIMIT_AS
 * finite (/proc/self/limits) or strict overcommit accounting (/proc/sys/vm/overcommit_memory 2).
 * When either cannot be read, true.
 */
function addressSpaceLimited(): boolean {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const line = limits.split('\n').find((l) => l.startsWith('Max address space'));
    const overcommit = readFileSync('/proc/sys/vm/overcommit_memory', 'utf8').trim();
    return line === undefined || !/\sunlimited\s+unlimited\s/.test(`${line} `) || overcommit === '2';
  } catch {
    return true;
  }
}

function bind(): Native {
  const require = createRequire(import.meta.url);
  const sodium = require('sodium-native') as SodiumNative;
  const koffi = require('koffi') as Koffi;
  let lib: ReturnType<Koffi['load']> | undefined;
  let lastError: unknown;
  for (const name of libcCandidates()) {
    try {
      lib = koffi.load(name);
      break;
    } catch (error) {
      lastError = error;
    }
  }
  if (lib === undefined) throw lastError;
  const fn = (prototype: string): NativeFunction => lib.func(prototype) as NativeFunction;
  const mmap = fn('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)');
  const munmap = fn('int munmap(void *addr, size_t length)');
  const mprotect = fn('int mprotect(void *addr, size_t length, int prot)');
  const mlock = fn('int mlock(void *addr, size_t length)');
  const munlock = fn('int munlock(void *addr, size_t length)');
  const madvise = fn('int madvise(void *addr, size_t length, int advice)');
  const getpagesize = fn('int getpagesize(void)');
  const mprotects: Record<Protection, (buf: SodiumBuffer) => void> = {
    noaccess: sodium.sodium_mprotect_noaccess,
    readonly: sodium.sodium_mprotect_readonly,
    readwrite: sodium.sodium_mprotect_readwrite,
  };

  const mapFailed = (1n << BigInt(8 * koffi.sizeof('void *'))) - 1n;
  const asAddress = (r: unknown): bigint => (typeof r === 'bigint' ? r : r === null ? 0n : BigInt(r as number));
  /** A libc call of two or three arguments returning 0 or -1, through the seam: 0 or the errno. */
  const call = (point: FaultPoint, f: NativeFunction, a: unknown, b: unknown, c?: unknown): number => {
    if (hook !== undefined) {
      const args = c === undefined ? [a, b] : [a, b, c];
      const fault = hook.before(point, args);
      if (fault !== undefined) return fault.errno;
      const result = Number(f(...args)) === 0 ? 0 : koffi.errno();
      hook.after?.(point, args, result);
      return result;
    }
    return Number(c === undefined ? f(a, b) : f(a, b, c)) === 0 ? 0 : koffi.errno();
  };
  const mapsMayBeRefused = addressSpaceLimited();
  /** Probe mappings whose munmap failed: unmapped by settle(). */
  const leftover: Array<[bigint, number]> = [];

  const native: Native = {
    pageSize: Number(getpagesize()),
    address: (buf) => asAddress(koffi.address(buf)),
    probeMap(length) {
      if (leftover.length !== 0) native.settle();
      const args = [null, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0];
      if (hook !== undefined) {
        const fault = hook.before('mmap', args);
        if (fault !== undefined) return fault.errno;
      }
      const address = asAddress(mmap(...args));
      if (address === mapFailed || address === 0n) return koffi.errno();
      hook?.after?.('mmap', args, address);
      // munmap of a whole mapping just made does not split anything: a failure can only be
      // transient. Try twice, then keep it for settle() rather than refuse a secret the kernel granted.
      if (call('munmap', munmap, address, length) !== 0 && call('munmap', munmap, address, length) !== 0) {
        leftover.push([address, length]);
      }
      return 0;
    },
    settle() {
      if (leftover.length === 0) return 0;
      for (let i = leftover.length - 1; i >= 0; i -= 1) {
        const [address, length] = leftover[i] as [bigint, number];
        if (call('munmap', munmap, address, length) === 0) leftover.splice(i, 1);
      }
      return leftover.length;
    },
    mapMayFail: () => hook !== undefined || mapsMayBeRefused,
    malloc(size) {
      if (hook !== undefined) {
        const fault = hook.before('sodium_malloc', [size]);
        if (fault?.malloc === 'throw') throw Object.assign(new Error('sodium_malloc failed'), { errno: fault.errno });
        if (fault !== undefined) return fault.errno;
      }
      koffi.errno(0);
      const buf = sodium.sodium_malloc(size);
      const quiet = koffi.errno() === 0 && hook === undefined;
      hook?.after?.('sodium_malloc', [size], asAddress(koffi.address(buf)));
      if (buf.byteLength === size) return { buf, quiet };
      sodium.sodium_free(buf);
      return ENOMEM;
    },
    free: (buf) => sodium.sodium_free(buf),
    protect(buf, protection, start, length) {
      try {
        if (hook !== undefined && hook.before('sodium_mprotect', [buf, protection]) !== undefined) throw sodiumMprotectError(protection);
        mprotects[protection](buf);
        return 0;
      } catch {
        return call('mprotect', mprotect, start, length, PROT[protection]);
      }
    },
    memzero: (view) => sodium.sodium_memzero(view),
    mlock: (address, length) => call('mlock', mlock, address, length),
    munlock: (address, length) => call('munlock', munlock, address, length),
    madvise: (address, length, advice) => call('madvise', madvise, address, length, advice),
    view: (address, length) => new Uint8Array(koffi.view(address, length)),
  };
  return native;
}

/**
 * sodium-native and libc, loaded on first use and cached.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux (or on an architecture whose
 * constants differ); `ERR_BACKEND_UNAVAILABLE` (with `cause`) when sodium-native, koffi or libc cannot be loaded.
 */
export function native(): Native {
  if (cached !== undefined) return cached;
  if (!isSupportedPlatform()) {
    throw new SecureMemoryError(
      ErrorCode.UNSUPPORTED_PLATFORM,
      `The sodium backend supports Linux only (${SUPPORTED_ARCHES.join(', ')})`,
      { backend: BACKEND },
    );
  }
  if (loadError !== undefined) throw loadError;
  try {
    cached = bind();
    return cached;
  } catch (error) {
    loadError = new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'The sodium backend cannot load sodium-native, koffi or libc', {
      backend: BACKEND,
      cause: error,
    });
    throw loadError;
  }
}
