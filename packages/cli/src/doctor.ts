/**
 * `secure-memory doctor`: what this machine offers secure memory, read without side effects.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { readMapCount, readMaxMapCount, readMemlockLimit, readResourceLimit, readStatusBytes } from '@secure-memory/core/backend';
import { PR_GET_DUMPABLE, libc } from '@secure-memory/system';
import { coreDumpUnavailable } from '@secure-memory/testkit';

/** One line of the doctor's findings. */
export interface DoctorItem {
  key: string;
  label: string;
  value: string | number | boolean | null;
  /** A short note for humans, such as what to do about it. */
  note?: string;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function bytes(n: number | undefined): string | null {
  if (n === undefined) return null;
  if (!Number.isFinite(n)) return 'unlimited';
  return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(n % (1 << 20) === 0 ? 0 : 1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KiB` : `${n} B`;
}

function pageSize(): number | undefined {
  const out = spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' });
  const n = Number(out.stdout?.trim());
  return out.status === 0 && Number.isFinite(n) ? n : undefined;
}

/** PR_GET_DUMPABLE through the shared libc binding: 1 dumpable, 0 not, 2 readable by root only; null off Linux. */
function dumpable(): number | null {
  try {
    const value = libc('cli').prctl(PR_GET_DUMPABLE, 0);
    return value < 0 ? null : value;
  } catch {
    return null;
  }
}

interface ProtectedMemoryModule {
  secretMemoryAvailable?: () => boolean;
  SIZE_CLASSES?: readonly number[];
  SLOT_STRIDES?: readonly number[];
}

/** The protected-memory backend, when it is installed: it probes memfd_secret and knows its slot sizes. */
async function protectedMemory(): Promise<ProtectedMemoryModule | undefined> {
  try {
    return (await import('@secure-memory/protected-memory' as string)) as ProtectedMemoryModule;
  } catch {
    return undefined;
  }
}

/** 32-byte secrets that fit in `budget` locked bytes: one page each, or packed in slab slots. */
function capacityEstimates(budget: number | undefined, page: number | undefined, pm: ProtectedMemoryModule | undefined): { perPage: number | null; slab: number | null } {
  if (budget === undefined || page === undefined || !Number.isFinite(budget)) return { perPage: null, slab: null };
  const pages = Math.floor(budget / page);
  const classIndex = pm?.SIZE_CLASSES?.findIndex((size) => size >= 32) ?? -1;
  const stride = classIndex === -1 ? undefined : pm?.SLOT_STRIDES?.[classIndex];
  return { perPage: pages, slab: stride === undefined ? null : pages * Math.floor(page / stride) };
}

/** Collects the doctor's findings. */
export async function runDoctor(): Promise<DoctorItem[]> {
  const memlock = readMemlockLimit();
  const locked = readStatusBytes('VmLck');
  const maps = readMapCount();
  const maxMaps = readMaxMapCount();
  const core = readResourceLimit('Max core file size');
  const swapTotal = readText('/proc/meminfo')?.match(/^SwapTotal:\s+(\d+) kB/m)?.[1];
  const gcore = coreDumpUnavailable() === undefined;
  const ptrace = readText('/proc/sys/kernel/yama/ptrace_scope');
  const pm = await protectedMemory();
  const memfd = typeof pm?.secretMemoryAvailable === 'function' ? pm.secretMemoryAvailable() : null;
  const page = pageSize();
  const budget = memlock.soft === undefined || locked === undefined ? undefined : Math.max(0, memlock.soft - locked);
  const capacity = capacityEstimates(budget, page, pm);
  const items: DoctorItem[] = [
    { key: 'platform', label: 'platform', value: `${process.platform}-${process.arch}` },
    { key: 'kernel', label: 'kernel', value: release() },
    { key: 'node', label: 'node', value: process.version },
    { key: 'pageSize', label: 'page size', value: page ?? null },
    { key: 'memlockSoft', label: 'RLIMIT_MEMLOCK soft', value: bytes(memlock.soft) },
    { key: 'memlockHard', label: 'RLIMIT_MEMLOCK hard', value: bytes(memlock.hard) },
    { key: 'lockedNow', label: 'locked now (VmLck)', value: bytes(locked) },
    {
      key: 'memlockLeft',
      label: 'locked memory left',
      value: bytes(budget),
      ...(process.getuid?.() === 0 ? { note: 'root has CAP_IPC_LOCK: the limit binds only unprivileged users' } : {}),
    },
    {
      key: 'capacityPerPage',
      label: 'capacity, a page per secret',
      value: capacity.perPage,
      note: '32-byte secrets in the memlock left: protected-memory page, sodium, memguard locked',
    },
    {
      key: 'capacitySlab',
      label: 'capacity, slab-packed',
      value: capacity.slab,
      note: capacity.slab === null ? 'install @secure-memory/protected-memory' : "32-byte secrets: protected-memory packing: 'slab'; memguard enclave mode is bounded by heap",
    },
    { key: 'mappings', label: 'mappings used', value: maps ?? null },
    { key: 'maxMapCount', label: 'vm.max_map_count', value: maxMaps ?? null },
    { key: 'mappingsLeft', label: 'mappings left', value: maps === undefined || maxMaps === undefined ? null : maxMaps - maps },
    { key: 'corePattern', label: 'core_pattern', value: readText('/proc/sys/kernel/core_pattern') ?? null },
    { key: 'coreLimit', label: 'RLIMIT_CORE soft', value: bytes(core.soft) },
    { key: 'swap', label: 'swap', value: swapTotal === undefined ? null : bytes(Number(swapTotal) * 1024) },
    { key: 'ptraceScope', label: 'yama ptrace_scope', value: ptrace ?? null, ...(ptrace === undefined ? { note: 'no Yama: ptrace is limited by uid and capabilities only' } : {}) },
    { key: 'dumpable', label: 'process dumpable', value: dumpable(), note: 'hardenProcess({ dumpable: false }) in protected-memory sets it to 0' },
    {
      key: 'memfdSecret',
      label: 'memfd_secret',
      value: memfd,
      ...(memfd === null ? { note: 'install @secure-memory/protected-memory to probe it' } : {}),
    },
    { key: 'gcore', label: 'gcore (core-dump probes)', value: gcore, ...(gcore ? {} : { note: 'apt-get install gdb' }) },
  ];
  return items;
}

/** Formats the findings as an aligned two-column table. */
export function formatDoctor(items: DoctorItem[]): string {
  const width = Math.max(...items.map((i) => i.label.length));
  return items
    .map((i) => `${i.label.padEnd(width)}  ${i.value === null ? 'unknown' : String(i.value)}${i.note ? `  (${i.note})` : ''}`)
    .join('\n');
}
