/**
 * `secure-memory bench`: each backend's operations against the native floor (the same system
 * calls in a C loop in memguard's development bench addon, `@secure-memory/memguard/bench`) and
 * against peers (raw sodium-native, a plain Buffer), measured in one run. A benchmark, never a test: it prints figures, it asserts nothing.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { cpus, release } from 'node:os';
import { loadBackend, type SecretFactory } from '@secure-memory/core';
import { unprivileged } from '@secure-memory/testkit';
import type { MatrixTarget } from './matrix.js';

/** The floor an operation is compared with; 'none' for throughput figures. */
export type FloorKind = 'mprotectPair' | 'guardedAlloc' | 'none';

/** One measured operation. */
export interface BenchResult {
  backend: string;
  operation: string;
  medianNs: number;
  /** The 25th and 75th percentiles of the per-batch figures. */
  p25Ns: number;
  p75Ns: number;
  /** (p75 - p25) / median, in percent. */
  spreadPct: number;
  batches: number;
  iterationsPerBatch: number;
  floor: FloorKind;
  /** medianNs over the floor measured in the same run, or null when no floor is available. */
  ratioToFloor: number | null;
  /** For operations on 1 MiB: megabytes (10^6 bytes) per second at the median. */
  throughputMBps?: number;
}

/** How many live 32-byte secrets one backend holds under the memlock limit in force. */
export interface CapacityResult {
  backend: string;
  operation: 'capacity';
  /** Live secrets made before the backend refused one, or the cap. */
  secrets: number;
  /** The error code that stopped it, or null when the cap was reached first. */
  stoppedBy: string | null;
  cap: number;
  /** Growth of VmLck and of the mapping count, divided by `secrets`. */
  lockedBytesPerSecret: number;
  mappingsPerSecret: number;
  /** Whether it ran as an unprivileged user (as root, RLIMIT_MEMLOCK does not bind). */
  unprivileged: boolean;
  ms: number;
}

/** The whole benchmark, as `--json` prints it. */
export interface BenchReport {
  machine: { platform: string; kernel: string; node: string; cpu: string; cores: number };
  floor: { mprotectPairNs: number | null; guardedAllocNs: number | null; source: string | null };
  results: BenchResult[];
  capacity: CapacityResult[];
}

/** How long to measure: the full run, or the short one inside `report`. */
export interface BenchPlan {
  batches: number;
  iterations: number;
  warmup: number;
  /** The most live secrets the capacity operation makes per backend. */
  capacityCap: number;
}

export const FULL_PLAN: BenchPlan = { batches: 15, iterations: 1000, warmup: 2000, capacityCap: 1_000_000 };
export const SHORT_PLAN: BenchPlan = { batches: 7, iterations: 300, warmup: 300, capacityCap: 20_000 };

const CAPACITY_CHILD = fileURLToPath(new URL('../dist/capacity-child.js', import.meta.url));

/** Runs the capacity child for one backend, as `nobody` when this process is root. */
function measureCapacity(target: MatrixTarget, cap: number): CapacityResult {
  const argv = [process.execPath, CAPACITY_CHILD, JSON.stringify({ module: target.module, options: target.options ?? {}, cap })];
  const asRoot = process.getuid?.() === 0;
  const [command, ...args] = asRoot ? unprivileged(argv) : argv;
  const child = spawnSync(command as string, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 20 });
  const line = child.stdout?.trim().split('\n').pop();
  if (child.status !== 0 || line === undefined || !line.startsWith('{')) {
    throw new Error(`the capacity child failed (${child.status ?? child.signal}): ${(child.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`);
  }
  const r = JSON.parse(line) as { count: number; stoppedBy: string | null; ms: number; lockedBytes: number; mappings: number; readable: boolean; uid: number };
  if (!r.readable) throw new Error('the capacity child could not read back its secrets');
  const per = (n: number): number => (r.count === 0 ? 0 : Math.round((n / r.count) * 100) / 100);
  return {
    backend: target.name,
    operation: 'capacity',
    secrets: r.count,
    stoppedBy: r.stoppedBy,
    cap,
    lockedBytesPerSecret: per(r.lockedBytes),
    mappingsPerSecret: per(r.mappings),
    unprivileged: r.uid !== 0,
    ms: Math.round(r.ms),
  };
}

type Op = () => unknown;
type AsyncOp = () => Promise<unknown>;

/** One operation to measure: made ready by `setup`, undone by the returned teardown. */
interface Case {
  backend: string;
  operation: string;
  floor: FloorKind;
  /** Bytes processed per operation, for a throughput figure. */
  bytes?: number;
  setup(): { op: Op | AsyncOp; async: boolean; teardown(): void };
}

const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.round((sorted.length - 1) * p)));
  return sorted[index] as number;
}

async function measure(c: Case, plan: BenchPlan): Promise<Omit<BenchResult, 'ratioToFloor'>> {
  const { op, async, teardown } = c.setup();
  try {
    // Batches yield to the event loop so that deferred frees (sodium-native) and finalizers run
    // between them, as they would in an application.
    for (let done = 0; done < plan.warmup; done += plan.iterations) {
      for (let i = 0; i < plan.iterations; i += 1) if (async) await (op as AsyncOp)(); else (op as Op)();
      await yieldTurn();
    }
    const perOp: number[] = [];
    for (let b = 0; b < plan.batches; b += 1) {
      const start = process.hrtime.bigint();
      if (async) for (let i = 0; i < plan.iterations; i += 1) await (op as AsyncOp)();
      else for (let i = 0; i < plan.iterations; i += 1) (op as Op)();
      perOp.push(Number(process.hrtime.bigint() - start) / plan.iterations);
      await yieldTurn();
    }
    perOp.sort((a, b) => a - b);
    const medianNs = percentile(perOp, 0.5);
    const p25Ns = percentile(perOp, 0.25);
    const p75Ns = percentile(perOp, 0.75);
    return {
      backend: c.backend,
      operation: c.operation,
      medianNs,
      p25Ns,
      p75Ns,
      spreadPct: ((p75Ns - p25Ns) / medianNs) * 100,
      batches: plan.batches,
      iterationsPerBatch: plan.iterations,
      floor: c.floor,
    };
  } finally {
    teardown();
  }
}

/** The four contract operations of one factory. */
function factoryCases(label: string, factory: SecretFactory): Case[] {
  const held = (): { secret: ReturnType<SecretFactory['createRandom']>; teardown(): void } => {
    const secret = factory.createRandom(32);
    return { secret, teardown: () => secret.close() };
  };
  return [
    {
      backend: label,
      operation: 'withBytes',
      floor: 'mprotectPair',
      setup: () => {
        const { secret, teardown } = held();
        const read = (b: Uint8Array): number => b[0] as number;
        return { op: () => secret.withBytes(read), async: false, teardown };
      },
    },
    {
      backend: label,
      operation: 'withBytesAsync',
      floor: 'mprotectPair',
      setup: () => {
        const { secret, teardown } = held();
        const read = async (b: Uint8Array): Promise<number> => b[0] as number;
        return { op: () => secret.withBytesAsync(read), async: true, teardown };
      },
    },
    {
      backend: label,
      operation: 'newClose',
      floor: 'guardedAlloc',
      setup: () => {
        const source = Buffer.alloc(32);
        const pattern = randomBytes(32);
        return {
          op: () => {
            source.set(pattern);
            factory.new(source).close();
          },
          async: false,
          teardown: () => pattern.fill(0),
        };
      },
    },
    {
      backend: label,
      operation: 'createRandomClose',
      floor: 'guardedAlloc',
      setup: () => ({ op: () => factory.createRandom(32).close(), async: false, teardown: () => {} }),
    },
  ];
}

interface SodiumNative {
  sodium_malloc(size: number): Buffer;
  sodium_free(buffer: Buffer): void;
  sodium_mprotect_noaccess(buffer: Buffer): void;
  sodium_mprotect_readonly(buffer: Buffer): void;
  randombytes_buf(buffer: Buffer): void;
}

/** Raw sodium-native: what a careful user would write by hand. */
function sodiumPeerCases(sodium: SodiumNative): Case[] {
  const label = 'peer:sodium-native';
  const held = (): { buffer: Buffer; teardown(): void } => {
    const buffer = sodium.sodium_malloc(32);
    sodium.randombytes_buf(buffer);
    sodium.sodium_mprotect_noaccess(buffer);
    return { buffer, teardown: () => sodium.sodium_free(buffer) };
  };
  return [
    {
      backend: label,
      operation: 'withBytes',
      floor: 'mprotectPair',
      setup: () => {
        const { buffer, teardown } = held();
        return {
          op: () => {
            sodium.sodium_mprotect_readonly(buffer);
            const x = buffer[0];
            sodium.sodium_mprotect_noaccess(buffer);
            return x;
          },
          async: false,
          teardown,
        };
      },
    },
    {
      backend: label,
      operation: 'withBytesAsync',
      floor: 'mprotectPair',
      setup: () => {
        const { buffer, teardown } = held();
        return {
          op: async () => {
            sodium.sodium_mprotect_readonly(buffer);
            try {
              return await Promise.resolve(buffer[0]);
            } finally {
              sodium.sodium_mprotect_noaccess(buffer);
            }
          },
          async: true,
          teardown,
        };
      },
    },
    {
      backend: label,
      operation: 'newClose',
      floor: 'guardedAlloc',
      setup: () => {
        const pattern = randomBytes(32);
        return {
          op: () => {
            const buffer = sodium.sodium_malloc(32);
            buffer.set(pattern);
            sodium.sodium_free(buffer);
          },
          async: false,
          teardown: () => pattern.fill(0),
        };
      },
    },
    {
      backend: label,
      operation: 'createRandomClose',
      floor: 'guardedAlloc',
      setup: () => ({
        op: () => {
          const buffer = sodium.sodium_malloc(32);
          sodium.randombytes_buf(buffer);
          sodium.sodium_free(buffer);
        },
        async: false,
        teardown: () => {},
      }),
    },
  ];
}

/** A plain Buffer: no protection at all, the cost of doing nothing. */
function bufferPeerCases(): Case[] {
  const label = 'peer:buffer';
  return [
    {
      backend: label,
      operation: 'withBytes',
      floor: 'mprotectPair',
      setup: () => {
        const buffer = randomBytes(32);
        const read = (b: Uint8Array): number => b[0] as number;
        return { op: () => read(buffer), async: false, teardown: () => buffer.fill(0) };
      },
    },
    {
      backend: label,
      operation: 'withBytesAsync',
      floor: 'mprotectPair',
      setup: () => {
        const buffer = randomBytes(32);
        const read = async (b: Uint8Array): Promise<number> => b[0] as number;
        return { op: () => read(buffer), async: true, teardown: () => buffer.fill(0) };
      },
    },
    {
      backend: label,
      operation: 'newClose',
      floor: 'guardedAlloc',
      setup: () => {
        const pattern = randomBytes(32);
        return {
          op: () => {
            const buffer = Buffer.alloc(32);
            buffer.set(pattern);
            buffer.fill(0);
          },
          async: false,
          teardown: () => pattern.fill(0),
        };
      },
    },
    {
      backend: label,
      operation: 'createRandomClose',
      floor: 'guardedAlloc',
      setup: () => ({
        op: () => randomFillSync(Buffer.alloc(32)).fill(0),
        async: false,
        teardown: () => {},
      }),
    },
  ];
}

interface Opened {
  destroy(): void;
}
interface EnclaveLike {
  open(): Opened;
}
/** `@secure-memory/memguard/bench`: the native floors (a development addon, absent from installs). */
interface FloorModule {
  floorMprotectPairNs(iterations: number): number;
  floorGuardedAllocNs(iterations: number): number;
}
/** memguard's Enclave API, for its own operations. */
interface EnclaveModule {
  newEnclave?(source: Uint8Array): EnclaveLike;
  newEnclaveRandom?(size: number): EnclaveLike;
}

/** memguard's own Enclave operations: open+destroy of 32 B (pooled), and seal and open of 1 MiB. */
function enclaveCases(mg: EnclaveModule): Case[] {
  const { newEnclave, newEnclaveRandom } = mg;
  if (newEnclave === undefined || newEnclaveRandom === undefined) return [];
  const MiB = 1 << 20;
  return [
    {
      backend: 'memguard',
      operation: 'enclaveOpenDestroy',
      floor: 'mprotectPair',
      setup: () => {
        const enclave = newEnclaveRandom(32);
        return { op: () => enclave.open().destroy(), async: false, teardown: () => {} };
      },
    },
    {
      backend: 'memguard',
      operation: 'seal1MiB',
      floor: 'none',
      bytes: MiB,
      setup: () => {
        const source = new Uint8Array(MiB); // zero-filled by each seal, as seal's contract says
        return { op: () => newEnclave(source), async: false, teardown: () => {} };
      },
    },
    {
      backend: 'memguard',
      operation: 'open1MiB',
      floor: 'none',
      bytes: MiB,
      setup: () => {
        const enclave = newEnclaveRandom(MiB);
        return { op: () => enclave.open().destroy(), async: false, teardown: () => {} };
      },
    },
  ];
}

async function optionalImport<T>(specifier: string): Promise<T | undefined> {
  try {
    return (await import(specifier)) as T;
  } catch {
    return undefined;
  }
}

/** Median of several floor runs, so that one noisy run does not set every ratio. */
function medianOf(runs: number, fn: () => number): number {
  const values = Array.from({ length: runs }, fn).sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)] as number;
}

/**
 * Runs the benchmark over the given backends and the two peers.
 * @param log progress lines (stderr in the command)
 */
export async function runBench(targets: readonly MatrixTarget[], plan: BenchPlan, log: (line: string) => void): Promise<BenchReport> {
  // Importing the module throws when its addon was not built: no floor then.
  const floorModule = await optionalImport<FloorModule>('@secure-memory/memguard/bench');
  const memguard = await optionalImport<EnclaveModule>('@secure-memory/memguard');
  let floor: BenchReport['floor'] = { mprotectPairNs: null, guardedAllocNs: null, source: null };
  if (floorModule !== undefined) {
    log('measuring the native floor (@secure-memory/memguard/bench)');
    floor = {
      mprotectPairNs: medianOf(5, () => floorModule.floorMprotectPairNs(plan.iterations * 5)),
      guardedAllocNs: medianOf(5, () => floorModule.floorGuardedAllocNs(plan.iterations)),
      source: '@secure-memory/memguard/bench',
    };
  } else {
    log('no native floor: @secure-memory/memguard/bench is not built here (it is a development addon, absent from installs); ratios are null');
  }

  const cases: Case[] = [];
  const capacityTargets: MatrixTarget[] = [];
  for (const target of targets) {
    try {
      cases.push(...factoryCases(target.name, await loadBackend(target.module, target.options)));
      capacityTargets.push(target);
    } catch (error) {
      log(`${target.name}: skipped (${(error as { code?: string }).code ?? (error as Error).message})`);
    }
  }
  if (memguard !== undefined) cases.push(...enclaveCases(memguard));
  const sodium = await optionalImport<{ default: SodiumNative }>('sodium-native');
  if (sodium !== undefined) cases.push(...sodiumPeerCases(sodium.default));
  else log('peer:sodium-native: skipped (sodium-native is not installed)');
  cases.push(...bufferPeerCases());

  const capacity: CapacityResult[] = [];
  for (const target of capacityTargets) {
    log(`capacity: ${target.name} (up to ${plan.capacityCap} live 32-byte secrets${process.getuid?.() === 0 ? ', as nobody' : ''})`);
    try {
      capacity.push(measureCapacity(target, plan.capacityCap));
    } catch (error) {
      log(`capacity: ${target.name}: ${(error as Error).message}`);
    }
  }

  const results: BenchResult[] = [];
  for (const [index, c] of cases.entries()) {
    log(`[${index + 1}/${cases.length}] ${c.backend} ${c.operation}`);
    // 1 MiB operations take about a millisecond: fewer per batch.
    const measured = await measure(c, c.bytes === undefined ? plan : { ...plan, iterations: 20, warmup: 20 });
    const floorNs = c.floor === 'mprotectPair' ? floor.mprotectPairNs : c.floor === 'guardedAlloc' ? floor.guardedAllocNs : null;
    results.push({
      ...measured,
      ratioToFloor: floorNs === null ? null : measured.medianNs / floorNs,
      ...(c.bytes === undefined ? {} : { throughputMBps: (c.bytes / measured.medianNs) * 1000 }),
    });
  }
  return {
    machine: {
      platform: `${process.platform}-${process.arch}`,
      kernel: release(),
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
    },
    floor,
    results,
    capacity,
  };
}

/** Formats the report as a table: one row per backend and operation. */
export function formatBench(report: BenchReport): string {
  const f = report.floor;
  const lines = [
    `floor (C loop in memguard's development bench addon): mprotect pair ${f.mprotectPairNs === null ? 'n/a' : Math.round(f.mprotectPairNs)} ns, guarded alloc+free ${f.guardedAllocNs === null ? 'n/a' : Math.round(f.guardedAllocNs)} ns`,
    '',
  ];
  const header = ['backend', 'operation', 'median ns', 'p25-p75 ns', 'spread', 'x floor'];
  const rows = report.results.map((r) => [
    r.backend,
    r.operation,
    String(Math.round(r.medianNs)),
    `${Math.round(r.p25Ns)}-${Math.round(r.p75Ns)}`,
    `${r.spreadPct.toFixed(1)}%`,
    r.throughputMBps !== undefined ? `${Math.round(r.throughputMBps)} MB/s` : r.ratioToFloor === null ? 'n/a' : `${r.ratioToFloor.toFixed(2)}x`,
  ]);
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map((row) => (row[c] as string).length)));
  const line = (row: string[]): string => row.map((cell, c) => (c >= 2 ? cell.padStart(widths[c] as number) : cell.padEnd(widths[c] as number))).join('  ');
  lines.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line));
  if (report.capacity.length > 0) {
    lines.push('', `capacity: live 32-byte secrets under the RLIMIT_MEMLOCK in force${report.capacity.some((c) => c.unprivileged) ? ', as nobody' : ''}`);
    const capHeader = ['backend', 'secrets', 'stopped by', 'locked B/secret', 'mappings/secret', 'ms'];
    const capRows = report.capacity.map((c) => [
      c.backend,
      c.stoppedBy === null ? `>= ${c.secrets}` : String(c.secrets),
      c.stoppedBy ?? `cap (${c.cap})`,
      String(c.lockedBytesPerSecret),
      String(c.mappingsPerSecret),
      String(c.ms),
    ]);
    const capWidths = capHeader.map((_, c) => Math.max(...[capHeader, ...capRows].map((row) => (row[c] as string).length)));
    const capLine = (row: string[]): string => row.map((cell, c) => (c === 0 || c === 2 ? cell.padEnd(capWidths[c] as number) : cell.padStart(capWidths[c] as number))).join('  ');
    lines.push(capLine(capHeader), capWidths.map((w) => '-'.repeat(w)).join('  '), ...capRows.map(capLine));
  }
  return lines.join('\n');
}
