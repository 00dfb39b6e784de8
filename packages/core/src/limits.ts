/**
 * The process's memory limits, read from /proc (Linux) without native code. Backends use them to
 * build precise `ERR_MEMLOCK_LIMIT` and `ERR_MAP_LIMIT` errors; the doctor reports them.
 * @module
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { ErrorCode, type ErrorCodeValue, SecureMemoryError } from './errors.js';

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function parseLimit(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (value === 'unlimited') return Number.POSITIVE_INFINITY;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** A soft and hard resource limit; `Infinity` for unlimited, `undefined` where unknown. */
export interface ResourceLimit {
  soft: number | undefined;
  hard: number | undefined;
}

/** RLIMIT_MEMLOCK of process `pid` (default: this one), in bytes. */
export function readMemlockLimit(pid: number | 'self' = 'self'): ResourceLimit {
  return readResourceLimit('Max locked memory', pid);
}

/** A line of /proc/<pid>/limits, such as "Max locked memory" or "Max core file size". */
export function readResourceLimit(name: string, pid: number | 'self' = 'self'): ResourceLimit {
  const line = readText(`/proc/${pid}/limits`)
    ?.split('\n')
    .find((l) => l.startsWith(name));
  if (line === undefined) return { soft: undefined, hard: undefined };
  const [soft, hard] = line.slice(name.length).trim().split(/\s+/);
  return { soft: parseLimit(soft), hard: parseLimit(hard) };
}

/** A field of /proc/<pid>/status in bytes (such as "VmLck"), or `undefined`. */
export function readStatusBytes(field: string, pid: number | 'self' = 'self'): number | undefined {
  const match = readText(`/proc/${pid}/status`)?.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
}

/** The number of mappings of process `pid` now, or `undefined` off Linux. */
export function readMapCount(pid: number | 'self' = 'self'): number | undefined {
  const maps = readText(`/proc/${pid}/maps`);
  if (maps === undefined) return undefined;
  let count = 0;
  for (let i = maps.indexOf('\n'); i !== -1; i = maps.indexOf('\n', i + 1)) count += 1;
  return count;
}

/** `vm.max_map_count`, or `undefined` off Linux. */
export function readMaxMapCount(): number | undefined {
  return parseLimit(readText('/proc/sys/vm/max_map_count')?.trim());
}

/** Builds `ERR_MEMLOCK_LIMIT` for a lock of `requested` bytes that the system refused. */
export function memlockLimitError(requested: number, details: { backend?: string; errno?: number; syscall?: string } = {}): SecureMemoryError {
  const { soft } = readMemlockLimit();
  const locked = readStatusBytes('VmLck');
  const limit = soft === undefined || !Number.isFinite(soft) ? undefined : soft;
  return new SecureMemoryError(
    ErrorCode.MEMLOCK_LIMIT,
    `Cannot lock ${requested} more bytes: RLIMIT_MEMLOCK is ${limit ?? 'unknown'} bytes and ${locked ?? 'unknown'} are locked`,
    { requested, ...(limit === undefined ? {} : { limit }), ...details },
  );
}

/**
 * When the process is at `vm.max_map_count`, the error for it. A call that has to split a mapping
 * (mmap next to a merged mapping, mlock, madvise or mprotect on part of one, munmap in the middle)
 * fails with ENOMEM there; this tells that apart from a real lack of memory.
 */
export function mapLimitError(backend: string, syscall: string, errno: number): SecureMemoryError | undefined {
  if (errno !== constants.errno.ENOMEM) return undefined;
  const count = readMapCount();
  const max = readMaxMapCount();
  if (count === undefined || max === undefined || count + 4 < max) return undefined;
  return new SecureMemoryError(ErrorCode.MAP_LIMIT, `Too many mappings: vm.max_map_count is ${max}`, {
    backend,
    errno,
    syscall,
    requested: count + 1,
    limit: max,
  });
}

/** The error of a failed system call: `code` with errno and syscall, or `ERR_MAP_LIMIT` when the process is at the mapping limit. */
export function systemError(backend: string, code: ErrorCodeValue, syscall: string, errno: number, requested?: number): SecureMemoryError {
  return (
    mapLimitError(backend, syscall, errno) ??
    new SecureMemoryError(code, `${syscall} failed with errno ${errno}`, {
      backend,
      errno,
      syscall,
      ...(requested === undefined ? {} : { requested }),
    })
  );
}

/** Mappings a backend leaves for the rest of the process: an eighth of `vm.max_map_count`, at least 1024. */
export function mapReserve(max: number): number {
  return Math.max(1024, Math.floor(max / 8));
}

/**
 * How many budgets (threads, or backends in one thread) may draw on the process's mappings at
 * once and still stay within `vm.max_map_count`: each one's credit between two counts is at most
 * 1/(this + 1) of the headroom plus the reserve.
 */
export const MAP_BUDGET_CONCURRENCY = 16;

/**
 * Keeps a backend's allocations clear of `vm.max_map_count`: a process whose mappings run out
 * aborts the next time V8 or a native module maps memory (a worker thread dies with
 * `ERR_WORKER_OUT_OF_MEMORY`), so allocations stop with `ERR_MAP_LIMIT` while {@link mapReserve}
 * mappings are left.
 *
 * The budget is the process's: it is counted from /proc/self/maps, which every thread and every
 * backend shares, never from what one budget object saw itself. Counting costs a read of the whole
 * file, so after a count a budget allocates without counting again for a credit of at most
 * `min(headroom, (headroom + reserve) / 17)` mappings: even when up to
 * {@link MAP_BUDGET_CONCURRENCY} budgets (worker threads each load their own copy of a backend) use
 * their whole credit at once, together they stay under `vm.max_map_count`. A free the backend made
 * itself gives its share back ({@link MapBudget.removed}); one the kernel runs later (libsodium's,
 * on a later turn) is seen by the next count.
 */
export class MapBudget {
  readonly #backend: string;
  readonly #perAllocation: number;
  /** Mappings this budget may still take before counting again. */
  #credit = 0;
  /** The credit the last count granted: the most that frees give back. */
  #grant = 0;

  /** @param perAllocation the mappings one allocation takes */
  constructor(backend: string, perAllocation: number) {
    this.#backend = backend;
    this.#perAllocation = perAllocation;
  }

  /**
   * Checks, before one more allocation, that the process keeps its reserve, and takes the
   * allocation's mappings from the credit.
   * @throws {SecureMemoryError} `ERR_MAP_LIMIT` with `requested` (the mappings there would be) and `limit` (`vm.max_map_count` minus the reserve).
   */
  assertHeadroom(): void {
    if (this.#credit >= this.#perAllocation) {
      this.#credit -= this.#perAllocation;
      return;
    }
    const count = readMapCount();
    const max = readMaxMapCount();
    if (count === undefined || max === undefined || !Number.isFinite(max)) {
      this.#credit = Number.POSITIVE_INFINITY; // nothing to read here: leave it to the kernel
      this.#grant = Number.POSITIVE_INFINITY;
      return;
    }
    const reserve = mapReserve(max);
    const limit = max - reserve;
    const headroom = limit - count;
    if (headroom < this.#perAllocation) {
      throw new SecureMemoryError(
        ErrorCode.MAP_LIMIT,
        `Too many mappings: ${count} of vm.max_map_count ${max}, of which ${reserve} are kept for the rest of the process`,
        { backend: this.#backend, requested: count + this.#perAllocation, limit },
      );
    }
    const share = Math.floor((headroom + reserve) / (MAP_BUDGET_CONCURRENCY + 1));
    this.#grant = Math.max(this.#perAllocation, Math.min(headroom, share));
    this.#credit = this.#grant - this.#perAllocation;
  }

  /** Counts again before the next allocation (after the kernel refused a mapping). */
  recount(): void {
    this.#credit = 0;
    this.#grant = 0;
  }

  /** Kept for backends that report their mappings; the budget counts /proc/self/maps instead. */
  added(): void {}

  /**
   * One allocation's mappings are unmapped now (call it after munmap succeeded, never for a free the
   * kernel runs later): their share of the credit comes back, up to what the last count granted. So
   * a steady rate of new and close counts /proc/self/maps once, not once per credit's worth of
   * allocations (a count reads the whole file: about 70 ms at 40,000 mappings here), and the budget
   * never passes what that count allowed.
   */
  removed(): void {
    this.#credit = Math.min(this.#grant, this.#credit + this.#perAllocation);
  }
}
