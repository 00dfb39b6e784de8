/**
 * The process's memory limits, read from /proc (Linux) without native code. Backends use them to
 * build precise `ERR_MEMLOCK_LIMIT` and `ERR_MAP_LIMIT` errors; the doctor reports them.
 * @module
 */
import { readFileSync } from 'node:fs';
import { ErrorCode, SecureMemoryError } from './errors.js';

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
