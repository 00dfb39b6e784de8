/**
 * libsodium's layout of one `sodium_malloc(size)` (src/libsodium/sodium/utils.c), and a one-time
 * check that the loaded build really lays memory out that way:
 *
 * ```
 * | base page (r--) | guard page (---) | unprotected pages: slack, canary, data | guard page (---) |
 *                                       ^ mlocked + MADV_DONTDUMP   ^ data ends on the page boundary
 * ```
 *
 * The data is right-aligned: its last byte is the last byte before the trailing guard page, and the
 * 16-byte canary sits right before its first byte. Four mappings per allocation.
 * @module
 */
import { ErrorCode, SecureMemoryError } from '@secure-memory/core';
import { findMapping, readMappings } from '@secure-memory/system';
import { kernelMapLimit, takeMappings } from './budget.js';
import { BACKEND, CANARY_SIZE, ENOMEM, type Native, errnoOf, native } from './native.js';

/** The unprotected (locked) length of a `size`-byte allocation: canary plus data, rounded up to pages. */
export function lockedLength(size: number, pageSize: number): number {
  return Math.ceil((size + CANARY_SIZE) / pageSize) * pageSize;
}

/** The whole mapping of a `size`-byte allocation: three pages around the unprotected ones. */
export function mappedLength(size: number, pageSize: number): number {
  return 3 * pageSize + lockedLength(size, pageSize);
}

/** The start of the unprotected pages of the allocation whose data starts at `address`. */
export function unprotectedStart(address: bigint, pageSize: number): bigint {
  const page = BigInt(pageSize);
  const canary = address - BigInt(CANARY_SIZE);
  return canary - (canary % page);
}

/** What the one-time check found, plus the sentinel the canary checks compare against. */
export interface Libsodium {
  readonly native: Native;
  /** The canary of a sentinel allocation that nothing writes to (read-only, held for the life of the process). */
  readonly referenceCanary: Uint8Array;
  /** True when the build marks the unprotected pages MADV_DONTDUMP (`dd` in smaps VmFlags). */
  readonly dumpExcluded: boolean;
}

interface MappingFacts {
  perms: string;
  flags: string[];
}

/** The perms and VmFlags of the mapping holding each address, from one read of /proc/self/smaps. */
function mappingsAt(addresses: bigint[]): (MappingFacts | undefined)[] {
  const mappings = readMappings('self');
  return addresses.map((address) => {
    const m = findMapping(mappings, address);
    return m === undefined ? undefined : { perms: m.perms, flags: m.vmFlags };
  });
}

let cached: Libsodium | undefined;
let checkError: SecureMemoryError | undefined;

function unavailable(message: string): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, `The sodium backend cannot work here: ${message}`, { backend: BACKEND });
}

/**
 * Loads the native layer and, once per process, checks the loaded libsodium against the layout
 * above: one sentinel allocation (kept read-only for the life of the process; its canary is the
 * reference for every close), whose data must end on a page boundary with no-access guard pages on
 * both sides. It also reads whether the build marks the pages MADV_DONTDUMP.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` or `ERR_BACKEND_UNAVAILABLE` from the native
 * layer; `ERR_BACKEND_UNAVAILABLE` when the build has no guard pages or another layout;
 * `ERR_MAP_LIMIT` or `ERR_ALLOCATION_FAILED` when the sentinel cannot be allocated, `ERR_PROTECTION_FAILED`
 * when it cannot be made read-only (these are not cached: the next factory tries again).
 */
export function libsodium(): Libsodium {
  if (cached !== undefined) return cached;
  if (checkError !== undefined) throw checkError;
  const n = native();
  // The sentinel is an allocation like any other: keep it within the mapping budget (these
  // errors are not cached: the next factory may find room).
  takeMappings();
  const refused = n.probeMap(mappedLength(1, n.pageSize));
  if (refused !== 0) {
    throw kernelMapLimit(refused, ENOMEM) ??
      new SecureMemoryError(ErrorCode.ALLOCATION_FAILED, `mmap failed with errno ${refused}`, { backend: BACKEND, errno: refused, syscall: 'mmap' });
  }
  try {
    cached = check(n);
    return cached;
  } catch (error) {
    // A failed system call may pass: not cached. A build that lays memory out otherwise will not change: cached.
    if (error instanceof SecureMemoryError && error.code !== ErrorCode.BACKEND_UNAVAILABLE) throw error;
    checkError =
      error instanceof SecureMemoryError
        ? error
        : new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, 'The sodium backend failed its self-check', { backend: BACKEND, cause: error });
    throw checkError;
  }
}

function check(n: Native): Libsodium {
  const page = BigInt(n.pageSize);
  if (n.pageSize < 4096 || n.pageSize % 4096 !== 0) throw unavailable(`unexpected page size ${n.pageSize}`);
  let made: ReturnType<Native['malloc']>;
  try {
    made = n.malloc(1);
  } catch (error) {
    const errno = errnoOf(error);
    throw new SecureMemoryError(ErrorCode.ALLOCATION_FAILED, 'sodium_malloc failed', {
      backend: BACKEND,
      syscall: 'sodium_malloc',
      ...(errno === undefined ? {} : { errno }),
      cause: error,
    });
  }
  if (typeof made === 'number') {
    throw new SecureMemoryError(ErrorCode.ALLOCATION_FAILED, `sodium_malloc failed with errno ${made}`, {
      backend: BACKEND,
      errno: made,
      syscall: 'sodium_malloc',
    });
  }
  const sentinel = made.buf;
  const address = n.address(sentinel);
  const start = unprotectedStart(address, n.pageSize);
  if (address + 1n !== start + page) throw unavailable('sodium_malloc does not right-align its data against a page boundary');
  const refusedProtection = n.protect(sentinel, 'readonly', start, lockedLength(1, n.pageSize));
  if (refusedProtection !== 0) {
    n.free(sentinel);
    throw new SecureMemoryError(ErrorCode.PROTECTION_FAILED, `mprotect failed with errno ${refusedProtection}`, {
      backend: BACKEND,
      errno: refusedProtection,
      syscall: 'mprotect',
    });
  }
  const [leading, data, trailing] = mappingsAt([start - 1n, address, address + 1n]);
  if (leading?.perms.startsWith('---') !== true || trailing?.perms.startsWith('---') !== true) {
    throw unavailable('this libsodium build has no guard pages around sodium_malloc memory');
  }
  if (data?.perms.startsWith('r--') !== true) throw unavailable('sodium_mprotect_readonly did not take effect');
  // The sentinel lives as long as the process: keep the Buffer reachable so its finalizer never runs.
  sentinels.push(sentinel);
  return {
    native: n,
    referenceCanary: n.view(address - BigInt(CANARY_SIZE), CANARY_SIZE),
    dumpExcluded: data.flags.includes('dd'),
  };
}

const sentinels: Buffer[] = [];
