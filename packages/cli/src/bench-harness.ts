/**
 * The harness of `secure-memory bench`: cases measured in interleaved rounds (the order rotated
 * each round), in thread CPU time and wall time, with deferred work drained inside the timing, and
 * the per-round ratios of each case to its floor and its peer; and the system calls per operation,
 * counted under strace in a child. What is measured is in bench-cases.ts; the table in bench-format.ts.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FloorScript, FloorTiming } from '@secure-memory/memguard/bench';

/** How a case runs `n` operations: a JavaScript loop (sync or async), or a floor's C loop. */
export type Runner =
  | { kind: 'sync'; op: () => unknown; teardown(): void }
  | { kind: 'async'; op: () => Promise<unknown>; teardown(): void }
  | { kind: 'native'; run(n: number): FloorTiming; teardown(): void };

/** Who a case measures: a backend of the matrix, a peer (what a user would write by hand), or a floor (C). */
type Role = 'backend' | 'peer' | 'floor';

/** One operation to measure. */
export interface BenchCase {
  /** Unique in a run: `<name>|<operation>`. */
  id: string;
  /** The matrix column (`memguard (locked)`), the peer or the floor. */
  name: string;
  backend: string;
  mode: string;
  operation: string;
  role: Role;
  /** The id of the floor case doing the same work in C, if any. */
  floor?: string;
  /** Where `floor` does less than the operation (OpenSSL in place), the id of a floor doing all of its work. */
  sameWork?: string;
  /** The id of the peer case doing the same operation, if any. */
  peer?: string;
  /** For a floor: its script (calls listed in the report). */
  script?: FloorScript;
  /** Bytes processed per operation, for a throughput figure. */
  bytes?: number;
  setup(): Runner;
}

/** How long to measure. */
export interface BenchPlan {
  rounds: number;
  /** Target length of one timed batch, in ms (the batch size is calibrated per case). */
  batchMs: number;
  /** Warm-up per case, in ms, before the rounds. */
  warmupMs: number;
  /** The numbers of live secrets among which the sodium backend's new+close is measured too. */
  liveSecrets: number[];
  /** Operations per case counted under strace (0: do not count). */
  syscallOps: number;
  /** The most live secrets the capacity operation makes per backend. */
  capacityCap: number;
}

/** Per-operation figures of one case, one entry per round. */
export interface Samples {
  cpuNs: number[];
  wallNs: number[];
  batch: number;
}

/** The clocks the harness reads. */
export interface Clocks {
  /** Nanoseconds of CPU: this thread's when the floor addon is there, else the process's. */
  cpu(): number;
  cpuClock: 'thread' | 'process';
  /** A floor's C loop, or undefined when the floor addon is not built. */
  runFloor?: (script: FloorScript, iterations: number) => FloorTiming;
}

/** The floor addon (`@secure-memory/memguard/bench`, a development build only), or process CPU time without it. */
export async function loadClocks(): Promise<Clocks> {
  try {
    const floors = await import('@secure-memory/memguard/bench');
    return { cpu: floors.threadCpuNs, cpuClock: 'thread', runFloor: floors.runFloor };
  } catch {
    return {
      cpu: () => {
        const u = process.cpuUsage();
        return (u.user + u.system) * 1000;
      },
      cpuClock: 'process',
    };
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Lets work deferred to later turns of the event loop run: sodium-native frees a buffer in a
 * finalizer that runs on a later turn, after the JavaScript that closed it. Two turns: the
 * finalizer queue, then anything it scheduled.
 */
async function drain(): Promise<void> {
  await turn();
  await turn();
}

/** Runs `n` operations and drains, timed; per-operation nanoseconds. */
async function timeBatch(runner: Runner, n: number, clocks: Clocks): Promise<{ cpuNs: number; wallNs: number }> {
  if (runner.kind === 'native') {
    const t = runner.run(n);
    return { cpuNs: t.cpuNs / n, wallNs: t.wallNs / n };
  }
  const wall = process.hrtime.bigint();
  const cpu = clocks.cpu();
  if (runner.kind === 'sync') for (let i = 0; i < n; i += 1) runner.op();
  else for (let i = 0; i < n; i += 1) await runner.op();
  await drain();
  return { cpuNs: (clocks.cpu() - cpu) / n, wallNs: Number(process.hrtime.bigint() - wall) / n };
}

/** Runs `n` operations and drains, untimed (warm-up, counting). */
export async function runOps(runner: Runner, n: number): Promise<void> {
  if (runner.kind === 'native') {
    if (n > 0) runner.run(n);
  } else if (runner.kind === 'sync') for (let i = 0; i < n; i += 1) runner.op();
  else for (let i = 0; i < n; i += 1) await runner.op();
  await drain();
}

/** Warms a case up for about `ms` and returns the batch size that takes about `batchMs`. */
async function calibrate(runner: Runner, plan: BenchPlan, clocks: Clocks): Promise<number> {
  // Work an earlier case left for a later turn (sodium-native frees 10,000 live buffers there, 0.2 s)
  // runs now, not in the first batch: sized on it, the batch would be one operation plus a drain.
  await drain();
  let n = 1;
  let spent = 0;
  let perOp = 0;
  while (spent < plan.warmupMs * 1e6) {
    const t = await timeBatch(runner, n, clocks);
    perOp = Math.max(t.wallNs, 1);
    spent += t.wallNs * n;
    n = Math.min(Math.max(1, Math.ceil((plan.batchMs * 1e6) / 4 / perOp)), 100_000);
  }
  return Math.min(Math.max(1, Math.round((plan.batchMs * 1e6) / perOp)), 100_000);
}

/**
 * Measures every case in `plan.rounds` rounds; each round runs one batch of each case, in an order
 * rotated by one each round. Cases whose setup throws are dropped (reported through `log`).
 */
export async function measureRounds(cases: readonly BenchCase[], plan: BenchPlan, clocks: Clocks, log: (line: string) => void): Promise<Map<string, Samples>> {
  const ready: Array<{ c: BenchCase; runner: Runner; batch: number }> = [];
  try {
    for (const [index, c] of cases.entries()) {
      log(`[${index + 1}/${cases.length}] warming up ${c.name} ${c.operation}`);
      let runner: Runner;
      try {
        runner = c.setup();
      } catch (error) {
        log(`${c.name} ${c.operation}: skipped (${(error as { code?: string }).code ?? (error as Error).message})`);
        continue;
      }
      ready.push({ c, runner, batch: await calibrate(runner, plan, clocks) });
    }
    const samples = new Map<string, Samples>(ready.map((r) => [r.c.id, { cpuNs: [], wallNs: [], batch: r.batch }]));
    for (let round = 0; round < plan.rounds; round += 1) {
      log(`round ${round + 1}/${plan.rounds}`);
      for (let k = 0; k < ready.length; k += 1) {
        const r = ready[(k + round) % ready.length] as (typeof ready)[number];
        const t = await timeBatch(r.runner, r.batch, clocks);
        const s = samples.get(r.c.id) as Samples;
        s.cpuNs.push(t.cpuNs);
        s.wallNs.push(t.wallNs);
      }
    }
    return samples;
  } finally {
    for (const r of ready) r.runner.teardown();
  }
}

/** The value at fraction `p` of sorted values (nearest rank). */
export function quantile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round((sorted.length - 1) * p)))] as number;
}

/** Median and interquartile range of per-round ratios a[i] / b[i]; null when either is missing. */
export function ratios(a: readonly number[] | undefined, b: readonly number[] | undefined): { median: number; spread: number } | null {
  if (a === undefined || b === undefined || a.length === 0 || a.length !== b.length) return null;
  const r = a.map((x, i) => x / (b[i] as number));
  if (!r.every(Number.isFinite)) return null;
  return { median: quantile(r, 0.5), spread: quantile(r, 0.75) - quantile(r, 0.25) };
}

/** System calls per operation of one case: the total and by name. */
export interface SyscallCount {
  perOp: number;
  byName: Record<string, number>;
}

const MARK_DIR = '/secure-memory-bench-mark';

/** A line strace logs for the harness's own marker (a stat of a path that does not exist). */
export function mark(tag: string): void {
  try {
    statSync(`${MARK_DIR}/${tag}`);
  } catch {
    // the path never exists: the failed stat is the mark
  }
}

/** Whether strace runs here. */
export function haveStrace(): boolean {
  return spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
}

/**
 * Counts each case's system calls per operation, on the main thread, in a child run under
 * `strace` (bench-child.ts): the calls between a case's marks for `ops` operations (drained), less
 * those between the marks of an empty batch (the harness's own). `childArgs` are the child's
 * arguments; the child prints nothing but marks. Cases the child could not set up are absent.
 */
export function countSyscalls(childArgs: string, ops: number, log: (line: string) => void): Map<string, SyscallCount> {
  const child = fileURLToPath(new URL('../dist/bench-child.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'secure-memory-bench-'));
  const out = join(dir, 'strace.log');
  try {
    const r = spawnSync('strace', ['-qq', '-o', out, process.execPath, child, childArgs], { encoding: 'utf8', timeout: 600_000, maxBuffer: 16 << 20 });
    if (r.status !== 0) throw new Error(`the counting child failed (${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`);
    const ids = JSON.parse(r.stdout.trim().split('\n').pop() ?? '[]') as string[];
    const counts = new Map<string, Record<string, number>>();
    let open: string | undefined;
    let current: Record<string, number> = {};
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const at = line.indexOf(`${MARK_DIR}/`);
      if (at >= 0) {
        const tag = line.slice(at + MARK_DIR.length + 1).split('"')[0] as string;
        if (tag.endsWith(':start')) {
          open = tag.slice(0, -':start'.length);
          current = {};
        } else if (open !== undefined && tag === `${open}:end`) {
          counts.set(open, current);
          open = undefined;
        }
        continue;
      }
      const name = /^([a-z_0-9]+)\(/.exec(line)?.[1];
      if (open !== undefined && name !== undefined) current[name] = (current[name] ?? 0) + 1;
    }
    const base = counts.get('baseline') ?? {};
    const result = new Map<string, SyscallCount>();
    for (const [index, id] of ids.entries()) {
      const seen = counts.get(String(index));
      if (seen === undefined) continue;
      const byName: Record<string, number> = {};
      let total = 0;
      for (const name of new Set([...Object.keys(seen), ...Object.keys(base)])) {
        const n = ((seen[name] ?? 0) - (base[name] ?? 0)) / ops;
        if (Math.abs(n) >= 0.005) byName[name] = Math.round(n * 100) / 100;
        total += n;
      }
      result.set(id, { perOp: Math.round(total * 100) / 100, byName });
    }
    return result;
  } catch (error) {
    log(`system calls not counted: ${(error as Error).message}`);
    return new Map();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
