/**
 * `secure-memory fuzz`: the testkit's model-based fuzz, run long, for each backend and mode in a
 * child process of its own, so that a crash is reported with the seed and the run that crashed.
 * @module
 */
import { fileURLToPath } from 'node:url';
import { type FuzzFailure, type FuzzResult, runChildScript } from '@secure-memory/testkit';
import type { MatrixTarget } from './matrix.js';

const FUZZ_CHILD = fileURLToPath(new URL('../dist/fuzz-child.js', import.meta.url));

/** How to fuzz. */
export interface FuzzPlan {
  seed: number;
  numRuns: number;
  /** Replay one run (or a shrunk path) instead of fuzzing. */
  path?: string;
  replayPath?: string;
}

/** What fuzzing one backend and mode gave. */
export interface FuzzTargetReport {
  name: string;
  module: string;
  options: Record<string, unknown>;
  ok: boolean;
  seed: number;
  /** Runs done (up to the failing one). */
  numRuns: number;
  commandsRun: number;
  operations: number;
  failure?: FuzzFailure;
  /** The child died (a signal, or an exit without a result). */
  crash?: { signal: string | null; code: number | null; run: number; stderr: string };
  /** The backend could not be fuzzed at all (it did not load). */
  error?: string;
  /** The command that replays the failure or the crash. */
  replay?: string;
  durationMs: number;
}

function quote(arg: string): string {
  return /^[\w@./:=-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function replayCommand(target: MatrixTarget, plan: FuzzPlan, path: string, replayPath: string | null): string {
  const args = ['secure-memory', 'fuzz', '--backend', target.module];
  if (target.options !== undefined && Object.keys(target.options).length > 0) args.push('--options', JSON.stringify(target.options));
  args.push('--seed', String(plan.seed), '--path', path);
  if (replayPath !== null) args.push('--replay-path', replayPath);
  return args.map(quote).join(' ');
}

/**
 * Fuzzes each target in turn, each in a fresh child process; progress goes to `log`. A failure, a
 * crash or a backend that does not load is a report that is not ok, never an exception.
 * @throws {Error} only when a child process cannot be started at all.
 */
export async function runFuzzTargets(targets: readonly MatrixTarget[], plan: FuzzPlan, log: (line: string) => void): Promise<FuzzTargetReport[]> {
  const reports: FuzzTargetReport[] = [];
  for (const [index, target] of targets.entries()) {
    const prefix = `[${index + 1}/${targets.length} ${target.name}]`;
    const started = Date.now();
    let runs = 0;
    let lastLog = Date.now();
    log(`${prefix} fuzzing: seed ${plan.seed}, ${plan.path === undefined ? `${plan.numRuns} runs` : `replaying path ${plan.path}`}`);
    const end = await runChildScript(
      FUZZ_CHILD,
      {
        module: target.module,
        ...(target.options === undefined ? {} : { options: target.options }),
        seed: plan.seed,
        numRuns: plan.numRuns,
        ...(plan.path === undefined ? {} : { path: plan.path }),
        ...(plan.replayPath === undefined ? {} : { replayPath: plan.replayPath }),
      },
      (event) => {
        if (event.event !== 'run') return;
        runs = event.runs as number;
        if (Date.now() - lastLog >= 2000) {
          lastLog = Date.now();
          log(`${prefix} ${runs}/${plan.numRuns} runs passed`);
        }
      },
    );
    const base = { name: target.name, module: target.module, options: target.options ?? {}, seed: plan.seed };
    const result = end.events.find((e) => e.event === 'result')?.result as FuzzResult | undefined;
    const error = end.events.find((e) => e.event === 'error');
    let report: FuzzTargetReport;
    if (result !== undefined) {
      report = {
        ...base,
        ok: result.ok,
        numRuns: result.numRuns,
        commandsRun: result.commandsRun,
        operations: result.operations,
        ...(result.failure === undefined ? {} : { failure: result.failure, replay: replayCommand(target, plan, result.failure.path, result.failure.replayPath) }),
        durationMs: Date.now() - started,
      };
    } else if (error !== undefined) {
      report = { ...base, ok: false, numRuns: 0, commandsRun: 0, operations: 0, error: `${String(error.code)}: ${String(error.message)}`, durationMs: Date.now() - started };
    } else {
      // The process died: the run that crashed is the one after the last that passed.
      const run = plan.path === undefined ? runs : Number(plan.path.split(':')[0]);
      report = {
        ...base,
        ok: false,
        numRuns: runs,
        commandsRun: 0,
        operations: 0,
        crash: { signal: end.signal, code: end.code, run, stderr: end.stderr.trim().split('\n').slice(-5).join('\n') },
        replay: replayCommand(target, plan, String(run), null),
        durationMs: Date.now() - started,
      };
    }
    log(`${prefix} ${report.ok ? 'ok' : report.crash !== undefined ? 'CRASHED' : report.error !== undefined ? `ERROR (${report.error})` : 'FAILED'}: ${report.numRuns} runs, ${report.commandsRun} commands, ${report.operations} operations in ${(report.durationMs / 1000).toFixed(1)} s`);
    reports.push(report);
  }
  return reports;
}

/** The reports as text: one line per target, then each failure with its seed, path and shrunk sequence. Never throws. */
export function formatFuzz(reports: readonly FuzzTargetReport[]): string {
  const rows = [['backend', 'result', 'runs', 'commands', 'operations', 'seconds']];
  for (const r of reports) {
    rows.push([r.name, r.ok ? 'ok' : r.crash !== undefined ? 'CRASHED' : r.error !== undefined ? 'ERROR' : 'FAILED', String(r.numRuns), String(r.commandsRun), String(r.operations), (r.durationMs / 1000).toFixed(1)]);
  }
  const widths = (rows[0] as string[]).map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  const out = rows.map((row) => row.map((cell, c) => (c === 0 || c === 1 ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join('  ').trimEnd());
  out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of reports) {
    if (r.failure !== undefined) out.push('', `${r.name}: ${r.failure.text}`, `replay: ${r.replay}`);
    if (r.crash !== undefined) {
      const how = r.crash.signal !== null ? `was killed by ${r.crash.signal}` : `exited with code ${r.crash.code}`;
      out.push('', `${r.name}: the process ${how} during run ${r.crash.run + 1} (seed ${r.seed}, path "${r.crash.run}")`, r.crash.stderr, `replay: ${r.replay}`);
    }
    if (r.error !== undefined) out.push('', `${r.name}: not fuzzed: ${r.error}`);
  }
  return out.join('\n');
}
