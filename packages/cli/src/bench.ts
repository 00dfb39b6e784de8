/**
 * `secure-memory bench`: each backend's operations against a floor doing exactly the same work in C
 * (memguard's development floor addon, `@secure-memory/memguard/bench`) and against peers (raw
 * sodium-native with its deferred frees drained, node:crypto with a heap key), in interleaved
 * rounds, with the system calls per operation counted under strace. A benchmark, never a test: it
 * prints figures, it asserts nothing. The harness is bench-harness.ts, the cases bench-cases.ts,
 * the table bench-format.ts.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpus, release } from 'node:os';
import { unprivileged } from '@secure-memory/testkit';
import type { FloorScript } from '@secure-memory/memguard/bench';
import { buildCases } from './bench-cases.js';
import { countSyscalls, haveStrace, loadClocks, measureRounds, quantile, ratios, type BenchCase, type BenchPlan, type SyscallCount } from './bench-harness.js';
import type { MatrixTarget } from './matrix.js';

export type { BenchPlan } from './bench-harness.js';

/** One floor: the C sequence one backend's operation is compared with. */
export interface BenchFloor {
  backend: string;
  mode: string;
  operation: string;
  /** The floor's name (several operations may share one script). */
  floor: string;
  /** The calls of one iteration, in order (`write`, `wipe` and `read` are memory accesses, not calls). */
  calls: string[];
  /** Median thread CPU nanoseconds per iteration, and wall nanoseconds. */
  medianNs: number;
  medianWallNs: number;
  /** System calls per iteration, counted under strace; null when not counted. */
  syscallsPerOp: number | null;
}

/** One measured operation. */
export interface BenchResult {
  /** The matrix column or peer name (`memguard (locked)`, `peer:sodium-native`). */
  name: string;
  backend: string;
  mode: string;
  operation: string;
  role: 'backend' | 'peer';
  /** Median over rounds of thread CPU nanoseconds per operation (process CPU when the floor addon is absent: see `clocks`). */
  medianNs: number;
  /** Median over rounds of wall nanoseconds per operation. */
  medianWallNs: number;
  /** Operations per timed batch, and rounds. */
  batch: number;
  rounds: number;
  /** The floor's name, or null when this operation has none here. */
  floor: string | null;
  /** Median of the per-round ratios to the floor (CPU time), and their interquartile range. */
  ratioToFloor: number | null;
  ratioSpread: number | null;
  /** The same in wall time. */
  ratioToFloorWall: number | null;
  /**
   * Where the floor does less than the operation (memguard's 1 MiB seal and open against OpenSSL in
   * place), the floor doing all of its work, and the median of the per-round ratios to it; else null.
   */
  sameWorkFloor?: string;
  ratioToSameWork?: number;
  /** The peer's name, and the median of per-round ratios to it (CPU time). */
  peer: string | null;
  ratioToPeer: number | null;
  ratioToPeerSpread: number | null;
  /** System calls per operation (main thread, under strace), in all and by name; null when not counted. */
  syscallsPerOp: number | null;
  syscalls: Record<string, number> | null;
  /** For operations on a known number of bytes: megabytes (10^6 bytes) per second at the median (CPU time). */
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
  /**
   * Growth of the resident set (VmRSS, after a full garbage collection) over the baseline taken after
   * one secret was made and closed, divided by `secrets`: the whole memory cost of a live secret
   * (JavaScript objects, ciphertext, native memory, page tables of locked pages).
   */
  rssBytesPerSecret: number;
  /** Whether it ran as an unprivileged user (as root, RLIMIT_MEMLOCK does not bind). */
  unprivileged: boolean;
  ms: number;
}

/** The whole benchmark, as `--json` prints it. */
export interface BenchReport {
  machine: { platform: string; kernel: string; node: string; cpu: string; cores: number };
  plan: BenchPlan;
  /** Which CPU clock `medianNs` reads, and what counted the system calls (null: not counted). */
  clocks: { cpu: 'thread' | 'process'; syscalls: 'strace' | null };
  /** One entry per operation and backend that has a floor (empty when the floor addon is not built). */
  floors: BenchFloor[];
  results: BenchResult[];
  capacity: CapacityResult[];
}

export const FULL_PLAN: BenchPlan = { rounds: 15, batchMs: 15, warmupMs: 60, liveSecrets: [100, 10_000], syscallOps: 200, capacityCap: 1_000_000 };
export const SHORT_PLAN: BenchPlan = { rounds: 5, batchMs: 4, warmupMs: 10, liveSecrets: [100, 1000], syscallOps: 30, capacityCap: 20_000 };

const CAPACITY_CHILD = fileURLToPath(new URL('../dist/capacity-child.js', import.meta.url));

/** Runs the capacity child for one backend, as `nobody` when this process is root. */
function measureCapacity(target: MatrixTarget, cap: number): CapacityResult {
  const argv = [process.execPath, '--expose-gc', CAPACITY_CHILD, JSON.stringify({ module: target.module, options: target.options ?? {}, cap })];
  const asRoot = process.getuid?.() === 0;
  const [command, ...args] = asRoot ? unprivileged(argv) : argv;
  const child = spawnSync(command as string, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 20 });
  const line = child.stdout?.trim().split('\n').pop();
  if (child.status !== 0 || line === undefined || !line.startsWith('{')) {
    throw new Error(`the capacity child failed (${child.status ?? child.signal}): ${(child.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`);
  }
  const r = JSON.parse(line) as { count: number; stoppedBy: string | null; ms: number; lockedBytes: number; mappings: number; rssBytes: number; readable: boolean; uid: number };
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
    rssBytesPerSecret: per(r.rssBytes),
    unprivileged: r.uid !== 0,
    ms: Math.round(r.ms),
  };
}

/** A floor script's iteration as a list: `mprotect(1 page, none)`, `write 32 B`. */
function describeCalls(script: FloorScript): string[] {
  return script.body.map((s) => {
    switch (s.call) {
      case 'mmap':
        return `mmap(${s.pages} pages, ${s.prot})`;
      case 'munmap':
        return 'munmap';
      case 'mprotect':
        return `mprotect(${s.pages === 1 ? `page ${s.page}` : `pages ${s.page}..${s.page + s.pages - 1}`}, ${s.prot})`;
      case 'madvise':
        return `madvise(${s.pages === 1 ? `page ${s.page}` : `pages ${s.page}..${s.page + s.pages - 1}`}, ${s.advice})`;
      case 'mlock':
      case 'munlock':
      case 'read':
        return `${s.call}(${s.pages === 1 ? `page ${s.page}` : `pages ${s.page}..${s.page + s.pages - 1}`})`;
      case 'seal':
        return `seal in place(pages ${s.page}..${s.page + s.pages - 1})`;
      case 'open':
      case 'sealTo':
        return `${s.call}(pages ${s.page}..${s.page + s.pages - 1} into ${s.to}..${s.to + s.pages - 1})`;
      default:
        return `${s.call} ${s.bytes} B`;
    }
  });
}

/**
 * Runs the benchmark over the given backends and the peers.
 * @param log progress lines (stderr in the command)
 */
export async function runBench(targets: readonly MatrixTarget[], plan: BenchPlan, log: (line: string) => void): Promise<BenchReport> {
  const clocks = await loadClocks();
  if (clocks.runFloor === undefined) {
    log('no floors: @secure-memory/memguard/bench is not built here (a development addon, absent from installs); ratios to floors are null, CPU time is the process\'s');
  }
  const { cases, loaded } = await buildCases(targets, clocks.runFloor, log, plan.liveSecrets);

  const capacity: CapacityResult[] = [];
  for (const target of loaded) {
    log(`capacity: ${target.name} (up to ${plan.capacityCap} live 32-byte secrets${process.getuid?.() === 0 ? ', as nobody' : ''})`);
    try {
      capacity.push(measureCapacity(target, plan.capacityCap));
    } catch (error) {
      log(`capacity: ${target.name}: ${(error as Error).message}`);
    }
  }

  let syscalls = new Map<string, SyscallCount>();
  const counter = plan.syscallOps > 0 && haveStrace() ? 'strace' : null;
  if (counter === null) log('system calls not counted: strace is not installed (or the plan counts none)');
  else {
    log(`counting system calls: ${plan.syscallOps} operations per case, in a child under strace`);
    syscalls = countSyscalls(JSON.stringify({ targets: loaded, ops: plan.syscallOps, liveSecrets: plan.liveSecrets }), plan.syscallOps, log);
  }

  // Cases among many live secrets run after the others, each in rounds of its own with its floor, so
  // that their secrets (and mappings) never weigh on the other cases.
  const among = cases.filter((c) => /@\d+live$/.test(c.operation));
  const samples = await measureRounds(cases.filter((c) => !among.includes(c)), plan, clocks, log);
  const byId = new Map(cases.map((c) => [c.id, c]));
  const floorSamplesOf = new Map<string, ReturnType<typeof samples.get>>();
  for (const c of among) {
    const floor = c.floor === undefined ? undefined : byId.get(c.floor);
    const own = await measureRounds(floor === undefined ? [c] : [floor, c], plan, clocks, log);
    const s = own.get(c.id);
    if (s !== undefined) samples.set(c.id, s);
    if (floor !== undefined) floorSamplesOf.set(c.id, own.get(floor.id));
  }
  const median = (xs: number[]): number => quantile(xs, 0.5);
  /** The floors entry of case `c` measured against `floor`. */
  const floorEntry = (c: BenchCase, floor: BenchCase, measured: { cpuNs: number[]; wallNs: number[] }): BenchFloor => ({
    backend: c.backend,
    mode: c.mode,
    operation: c.operation,
    floor: floor.operation,
    calls: describeCalls(floor.script as FloorScript),
    medianNs: median(measured.cpuNs),
    medianWallNs: median(measured.wallNs),
    syscallsPerOp: syscalls.get(floor.id)?.perOp ?? null,
  });
  const results: BenchResult[] = [];
  const floors: BenchFloor[] = [];
  for (const c of cases) {
    const s = samples.get(c.id);
    if (s === undefined || c.role === 'floor') continue;
    const floorSamples = c.floor === undefined ? undefined : floorSamplesOf.has(c.id) ? floorSamplesOf.get(c.id) : samples.get(c.floor);
    const peerSamples = c.peer === undefined ? undefined : samples.get(c.peer);
    const toFloor = ratios(s.cpuNs, floorSamples?.cpuNs);
    const toFloorWall = ratios(s.wallNs, floorSamples?.wallNs);
    const toPeer = ratios(s.cpuNs, peerSamples?.cpuNs);
    const sameWork = c.sameWork === undefined ? undefined : byId.get(c.sameWork);
    const sameWorkSamples = sameWork === undefined ? undefined : samples.get(sameWork.id);
    const toSameWork = ratios(s.cpuNs, sameWorkSamples?.cpuNs);
    const count = syscalls.get(c.id);
    const medianNs = median(s.cpuNs);
    results.push({
      name: c.name,
      backend: c.backend,
      mode: c.mode,
      operation: c.operation,
      role: c.role,
      medianNs,
      medianWallNs: median(s.wallNs),
      batch: s.batch,
      rounds: s.cpuNs.length,
      floor: floorSamples === undefined ? null : (byId.get(c.floor as string)?.operation ?? null),
      ratioToFloor: toFloor?.median ?? null,
      ratioSpread: toFloor?.spread ?? null,
      ratioToFloorWall: toFloorWall?.median ?? null,
      peer: peerSamples === undefined ? null : (byId.get(c.peer as string)?.name ?? null),
      ratioToPeer: toPeer?.median ?? null,
      ratioToPeerSpread: toPeer?.spread ?? null,
      syscallsPerOp: count?.perOp ?? null,
      syscalls: count?.byName ?? null,
      ...(c.bytes === undefined ? {} : { throughputMBps: (c.bytes / medianNs) * 1000 }),
      ...(sameWork === undefined || toSameWork === null ? {} : { sameWorkFloor: sameWork.operation, ratioToSameWork: toSameWork.median }),
    });
    if (sameWork !== undefined && sameWorkSamples !== undefined) floors.push(floorEntry(c, sameWork, sameWorkSamples));
    const floor = c.floor === undefined ? undefined : byId.get(c.floor);
    if (floor !== undefined && floorSamples !== undefined) floors.push(floorEntry(c, floor, floorSamples));
  }
  return {
    machine: {
      platform: `${process.platform}-${process.arch}`,
      kernel: release(),
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
    },
    plan,
    clocks: { cpu: clocks.cpuClock, syscalls: syscalls.size > 0 ? counter : null },
    floors,
    results,
    capacity,
  };
}

export { formatBench } from './bench-format.js';
