/**
 * `runConformance`: the contract suite and the guarantee probes of one backend, as a
 * JSON-serialisable report.
 * @module
 */
import { release } from 'node:os';
import { GUARANTEE_FLAGS, type GuaranteeFlag, assertOptions } from '@secure-memory/core';
import type { CheckResult } from './contract.js';
import { type GuaranteeVerdict, judge } from './judge.js';
import { type Observations, type Progress, observe, runChild } from './observe.js';

/** What to test. */
export interface ConformanceTarget {
  /** A module specifier that child processes can import: a package name, an absolute path or a file: URL. */
  module: string;
  /** Passed to the module's `createFactory(options)`. */
  options?: Record<string, unknown>;
  /** A label for reports; defaults to the backend's name. */
  name?: string;
}

/** The report of {@link runConformance}. */
export interface ConformanceReport {
  /** A label for this backend and options. */
  name: string;
  /** The backend's own `name`. */
  backend: string;
  module: string;
  options: Record<string, unknown>;
  platform: string;
  /** False when any contract check, bad input, or claimed guarantee fails. */
  ok: boolean;
  contract: { passed: number; failed: number; checks: CheckResult[] };
  badInputs: { passed: number; failed: number; cases: CheckResult[] };
  guarantees: Record<GuaranteeFlag, GuaranteeVerdict>;
  /** Summaries of what the probes saw. */
  evidence: {
    memoryHits: { idle: number; access: number; closed: number };
    coreDumpHits: { idle: number | null; access: number | null };
    regionProbe: boolean;
  };
  durationMs: number;
}

/** Validates a target; throws typed errors for bad input. */
export function assertTarget(target: unknown): asserts target is ConformanceTarget {
  assertOptions(target, 'target');
  const t = target as Partial<ConformanceTarget> | undefined;
  if (t === undefined || typeof t.module !== 'string' || t.module === '') {
    throw Object.assign(new TypeError('The "module" option must be a non-empty module specifier'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  assertOptions(t.options, 'options');
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** Builds the report from the contract results and the observations. */
export function buildReport(
  target: ConformanceTarget,
  contract: { checks: CheckResult[]; badInputs: CheckResult[] },
  observations: Observations,
  started: number,
): ConformanceReport {
  const guarantees = judge(observations);
  const failed = (list: CheckResult[]): number => list.filter((c) => !c.ok).length;
  const core = (scan: Observations['cores']['idle']): number | null => (scan.available ? sum(scan.hits) : null);
  const ok =
    failed(contract.checks) === 0 &&
    failed(contract.badInputs) === 0 &&
    GUARANTEE_FLAGS.every((f) => guarantees[f].status !== 'violated');
  return {
    name: target.name ?? observations.name,
    backend: observations.name,
    module: target.module,
    options: target.options ?? {},
    platform: `${process.platform}-${process.arch} ${release()}`,
    ok,
    contract: { passed: contract.checks.length - failed(contract.checks), failed: failed(contract.checks), checks: contract.checks },
    badInputs: { passed: contract.badInputs.length - failed(contract.badInputs), failed: failed(contract.badInputs), cases: contract.badInputs },
    guarantees,
    evidence: {
      memoryHits: {
        idle: observations.scans.idle.hits.length,
        access: observations.scans.access.hits.length,
        closed: observations.scans.closed.hits.length,
      },
      coreDumpHits: { idle: core(observations.cores.idle), access: core(observations.cores.access) },
      regionProbe: observations.regions.idle.every((r) => r !== null),
    },
    durationMs: Date.now() - started,
  };
}

/**
 * Runs the contract suite (in a child process) and observes every guarantee from outside.
 * Linux only: the probes read /proc and need gcore (gdb) for core dumps.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad target.
 * @throws {Error} when the backend cannot even start in a child (the message says why).
 * @example
 * ```ts
 * const report = await runConformance({ module: '@secure-memory/protected-memory' });
 * if (!report.ok) process.exitCode = 1;
 * ```
 */
export async function runConformance(target: ConformanceTarget, progress: Progress = () => {}): Promise<ConformanceReport> {
  assertTarget(target);
  const started = Date.now();
  const base = { module: target.module, ...(target.options === undefined ? {} : { options: target.options }) };
  progress('running the contract suite in a child process');
  const contractRun = await runChild({ ...base, mode: 'contract' });
  const result = contractRun.events.find((e) => e.event === 'contract') as { checks: CheckResult[]; badInputs: CheckResult[] } | undefined;
  const contract = result ?? {
    checks: [{ name: 'the contract suite runs to its end', ok: false, error: `the child ended (code ${contractRun.code}, signal ${contractRun.signal}): ${contractRun.stderr.trim().split('\n').slice(-3).join(' | ')}` }],
    badInputs: [],
  };
  const observations = await observe(target.module, target.options, progress);
  return buildReport(target, contract, observations, started);
}
