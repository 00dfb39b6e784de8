/**
 * `secure-memory soak`: a million mixed operations over many live secrets per backend and mode,
 * each in a fresh child process, then a check that nothing was left behind: locked memory, the
 * backend's mappings and open descriptors back at their baseline exactly, and memory flat.
 * @module
 */
import { fileURLToPath } from 'node:url';
import { runChildScript } from '@secure-memory/testkit';
import type { MatrixTarget } from './matrix.js';
import type { SoakSample } from './soak-child.js';

const SOAK_CHILD = fileURLToPath(new URL('../dist/soak-child.js', import.meta.url));
const MiB = 1024 * 1024;

/** How long and how wide a soak is. */
export interface SoakPlan {
  /** Operations after the warm-up (default 1,000,000). */
  operations: number;
  /** Secrets kept live (default 1000). */
  liveSecrets: number;
  /** Operations of the warm-up before the baseline (default: a tenth of `operations`, from 5000 to 100,000). */
  warmup?: number;
  seed?: number;
}

/** The default soak: a million operations over a thousand live secrets. */
export const FULL_SOAK: SoakPlan = { operations: 1_000_000, liveSecrets: 1000 };
/** The soak inside the tests. */
export const SHORT_SOAK: SoakPlan = { operations: 20_000, liveSecrets: 1000 };

/**
 * The tolerances of the memory checks, and why:
 * - The JS heap in use (`heapUsed`) after closing everything and collecting garbage must be within
 *   8 MiB of the baseline: a leak of one small object per operation would be tens of MiB.
 * - Native memory (RSS less the resident V8 heap, `v8.getHeapStatistics().total_physical_size`)
 *   within 16 MiB: a 16-byte leak per operation of a million, or 128 bytes per secret made (about
 *   125,000), would reach it; glibc keeps freed memory in its arenas, and the control backend, which
 *   has no native memory at all, drifts by about 5 MiB in the same soak.
 * - Native memory flat while the live set is steady: from the middle of the run to its end, RSS
 *   less the resident V8 heap may grow by at most 16 MiB. RSS itself is not judged: under the
 *   workload's allocation rate V8 grows its young generation (about 15 to 35 MiB resident, at any
 *   point of a short run) and keeps it after collection; that is V8's heap, which the first check
 *   judges by what is in use.
 */
export const SOAK_TOLERANCES = { heapUsedBytes: 8 * MiB, nativeBytes: 16 * MiB, steadyNativeBytes: 16 * MiB } as const;

/** One verdict of a soak. */
export interface SoakCheck {
  name: string;
  ok: boolean;
  before: number | null;
  after: number | null;
  detail: string;
}

/** What soaking one backend and mode gave. */
export interface SoakReport {
  name: string;
  module: string;
  options: Record<string, unknown>;
  ok: boolean;
  operations: number;
  warmupOperations: number;
  liveSecrets: number;
  secretsMade: number;
  byKind: Record<string, number>;
  gcExposed: boolean;
  before: SoakSample | null;
  after: SoakSample | null;
  /** RSS, VmLck, mappings and secrets in use every twentieth of the run (with the live set in place). */
  samples: Pick<SoakSample, 'done' | 'rss' | 'vmLck' | 'mappings' | 'inUse'>[];
  checks: SoakCheck[];
  /** The child did not report (it failed to load the backend, threw, or died). */
  error?: string;
  durationMs: number;
}

/** What the soak child reports at the end (its `result` event). */
export interface SoakResultEvent {
  gcExposed: boolean;
  warmupOperations: number;
  operations: number;
  byKind: Record<string, number>;
  secretsMade: number;
  mismatches: number;
  firstMismatch?: string;
  digestMatches: boolean;
  before: SoakSample;
  after: SoakSample;
  samples: SoakSample[];
}

const mib = (n: number): string => `${(n / MiB).toFixed(1)} MiB`;

/** Judges a soak child's result against the baselines and {@link SOAK_TOLERANCES}. Never throws. */
export function judgeSoak(result: SoakResultEvent): SoakCheck[] {
  const { before: b, after: a } = result;
  const exact = (name: string, key: 'vmLck' | 'protectedBytes' | 'fds' | 'lockedBytes' | 'inUse', unit = ''): SoakCheck => ({
    name,
    ok: a[key] === b[key],
    before: b[key],
    after: a[key],
    detail: `${b[key]}${unit} -> ${a[key]}${unit}${a[key] === b[key] ? '' : ' (not back to the baseline)'}`,
  });
  const native = (s: SoakSample): number => s.rss - s.heapPhysical;
  const middle = result.samples[Math.floor((result.samples.length - 1) / 2)];
  const last = result.samples[result.samples.length - 1];
  const steady = middle !== undefined && last !== undefined ? native(last) - native(middle) : 0;
  return [
    exact('VmLck (bytes locked)', 'vmLck', ' B'),
    exact("the bytes of the backend's mappings (locked, undumped, wiped on fork, or secret memory)", 'protectedBytes', ' B'),
    exact('open file descriptors', 'fds'),
    exact('stats().lockedBytes', 'lockedBytes', ' B'),
    { name: 'stats().inUse', ok: a.inUse === 0, before: b.inUse, after: a.inUse, detail: `${a.inUse} secrets in use after every one was closed` },
    {
      name: 'JS heap in use',
      ok: a.heapUsed - b.heapUsed <= SOAK_TOLERANCES.heapUsedBytes,
      before: b.heapUsed,
      after: a.heapUsed,
      detail: `${mib(b.heapUsed)} -> ${mib(a.heapUsed)} (tolerance +${mib(SOAK_TOLERANCES.heapUsedBytes)})`,
    },
    {
      name: 'native memory (RSS less the resident V8 heap)',
      ok: native(a) - native(b) <= SOAK_TOLERANCES.nativeBytes,
      before: native(b),
      after: native(a),
      detail: `${mib(native(b))} -> ${mib(native(a))} (tolerance +${mib(SOAK_TOLERANCES.nativeBytes)})`,
    },
    {
      name: 'native memory flat with the live set steady (RSS less the resident V8 heap, middle of the run to its end)',
      ok: steady <= SOAK_TOLERANCES.steadyNativeBytes,
      before: middle === undefined ? null : native(middle),
      after: last === undefined ? null : native(last),
      detail: `${middle === undefined ? '?' : mib(native(middle))} -> ${last === undefined ? '?' : mib(native(last))} (tolerance +${mib(SOAK_TOLERANCES.steadyNativeBytes)})`,
    },
    {
      name: 'every read matched',
      ok: result.mismatches === 0 && result.digestMatches,
      before: null,
      after: result.mismatches,
      detail: result.mismatches === 0 ? (result.digestMatches ? 'every read matched; the survivors hold the bytes derived from their seeds' : 'the survivors do not hold their bytes') : `${result.mismatches} mismatches, the first: ${result.firstMismatch ?? '?'}`,
    },
  ];
}

/**
 * Soaks each target in turn, each in a fresh child process run with `--expose-gc`; progress goes
 * to `log`. A leak, a failed read or a child that dies is a report that is not ok, never an exception.
 * @throws {Error} only when a child process cannot be started at all.
 */
export async function runSoak(targets: readonly MatrixTarget[], plan: SoakPlan, log: (line: string) => void): Promise<SoakReport[]> {
  const warmup = plan.warmup ?? Math.min(100_000, Math.max(5000, Math.round(plan.operations / 10)));
  const reports: SoakReport[] = [];
  for (const [index, target] of targets.entries()) {
    const prefix = `[${index + 1}/${targets.length} ${target.name}]`;
    const started = Date.now();
    log(`${prefix} warming up (${warmup} operations), then ${plan.operations} operations over ${plan.liveSecrets} live secrets`);
    let lastLog = 0;
    const end = await runChildScript(
      SOAK_CHILD,
      { module: target.module, ...(target.options === undefined ? {} : { options: target.options }), operations: plan.operations, liveSecrets: plan.liveSecrets, warmup, seed: plan.seed ?? 1 },
      (event) => {
        if (event.event === 'baseline') log(`${prefix} baseline taken`);
        if (event.event === 'progress' && Date.now() - lastLog > 2000) {
          lastLog = Date.now();
          log(`${prefix} ${String(event.done)}/${plan.operations} operations, RSS ${mib(event.rss as number)}, VmLck ${String(event.vmLck)} B, ${String(event.mappings)} mappings`);
        }
      },
      ['--expose-gc'],
    );
    const base = { name: target.name, module: target.module, options: target.options ?? {}, liveSecrets: plan.liveSecrets };
    const result = end.events.find((e) => e.event === 'result') as (SoakResultEvent & { event: string }) | undefined;
    let report: SoakReport;
    if (result === undefined) {
      const error = end.events.find((e) => e.event === 'error');
      const why =
        error !== undefined
          ? `${String(error.code)}: ${String(error.message)}`
          : `the child ${end.signal !== null ? `was killed by ${end.signal}` : `exited with code ${end.code}`}: ${end.stderr.trim().split('\n').slice(-3).join(' | ')}`;
      report = { ...base, ok: false, operations: 0, warmupOperations: 0, secretsMade: 0, byKind: {}, gcExposed: false, before: null, after: null, samples: [], checks: [], error: why, durationMs: Date.now() - started };
    } else {
      const checks = judgeSoak(result);
      report = {
        ...base,
        ok: checks.every((c) => c.ok),
        operations: result.operations,
        warmupOperations: result.warmupOperations,
        secretsMade: result.secretsMade,
        byKind: result.byKind,
        gcExposed: result.gcExposed,
        before: result.before,
        after: result.after,
        samples: result.samples.map(({ done, rss, vmLck, mappings, inUse }) => ({ done, rss, vmLck, mappings, inUse })),
        checks,
        durationMs: Date.now() - started,
      };
    }
    log(`${prefix} ${report.ok ? 'ok' : 'NOT OK'} in ${(report.durationMs / 1000).toFixed(1)} s${report.error === undefined ? '' : `: ${report.error}`}`);
    reports.push(report);
  }
  return reports;
}

/** The reports as text: per backend, the baseline and the figures after closing everything. Never throws. */
export function formatSoak(reports: readonly SoakReport[]): string {
  const header = ['backend', 'result', 'operations', 'VmLck B', 'peak VmLck B', 'backend maps', 'all maps', 'peak maps', 'fds', 'RSS MiB', 'native MiB', 'heap MiB', 'seconds'];
  const peak = (r: SoakReport, key: 'vmLck' | 'mappings'): string => (r.samples.length === 0 ? '-' : String(Math.max(...r.samples.map((s) => s[key]))));
  const pair = (b: number | null | undefined, a: number | null | undefined, scale = 1): string =>
    b === null || b === undefined || a === null || a === undefined ? '-' : `${scale === 1 ? b : (b / scale).toFixed(1)} -> ${scale === 1 ? a : (a / scale).toFixed(1)}`;
  const rows = reports.map((r) => [
    r.name,
    r.ok ? 'ok' : 'NOT OK',
    String(r.operations),
    pair(r.before?.vmLck, r.after?.vmLck),
    peak(r, 'vmLck'),
    pair(r.before?.protectedMappings, r.after?.protectedMappings),
    pair(r.before?.mappings, r.after?.mappings),
    peak(r, 'mappings'),
    pair(r.before?.fds, r.after?.fds),
    pair(r.before?.rss, r.after?.rss, MiB),
    pair(r.before === null ? null : r.before.rss - r.before.heapPhysical, r.after === null ? null : r.after.rss - r.after.heapPhysical, MiB),
    pair(r.before?.heapUsed, r.after?.heapUsed, MiB),
    (r.durationMs / 1000).toFixed(1),
  ]);
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map((row) => (row[c] ?? '').length)));
  const line = (row: string[]): string => row.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  out.push(
    '',
    'before = after a warm-up, with every secret closed; after = the same, after the run; peak = the most seen while the live',
    'secrets were held. VmLck, the bytes of the "backend maps" (locked, undumped, wiped on fork, or secret memory; their count',
    'is shown, but adjacent ones merge) and fds must come back exactly;',
    '"all maps" and RSS also count the runtime (V8 heap pages, malloc arenas): memory is judged by the tolerances in the README.',
  );
  for (const r of reports) {
    const failed = r.checks.filter((c) => !c.ok);
    if (r.error !== undefined) out.push('', `${r.name}: ${r.error}`);
    if (failed.length > 0) out.push('', `${r.name} fails:`, ...failed.map((c) => `  - ${c.name}: ${c.detail}`));
  }
  return out.join('\n');
}
