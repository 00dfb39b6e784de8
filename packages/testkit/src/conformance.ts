/**
 * `runConformance`: the contract suite and the guarantee probes of one backend, as a
 * JSON-serialisable report.
 * @module
 */
import { release } from 'node:os';
import { ErrorCode, GUARANTEE_FLAGS, type GuaranteeFlag, type Guarantees, SecureMemoryTypeError } from '@secure-memory/core';
import { assertOptions, describeType } from '@secure-memory/core/backend';
import type { CheckResult } from './contract.js';
import { type GuaranteeVerdict, type RealUseResult, judge, realUse } from './judge.js';
import { type Observations, type Progress, observe } from './observe.js';
import { type ChildOutcome, ProbeFailure, runChild } from './session.js';
import { ENCODINGS, SEARCH_DESCRIPTION, WINDOW } from './search.js';
import { type KeyUseReport, type KeyUseTarget, assertKeyUseOptions, probeKeyUse } from './key-use.js';

/** What to test. */
export interface ConformanceTarget {
  /** A module specifier that child processes can import: a package name, an absolute path or a file: URL. */
  module: string;
  /** Passed to the module's `createFactory(options)`. */
  options?: Record<string, unknown>;
  /** A label for reports; defaults to the backend's name. */
  name?: string;
  /**
   * Run the fixed-seed fuzz, the worker-thread check and the async interleaving (default true).
   * `false` leaves them out; the report says they did not run.
   */
  reliability?: boolean;
  /**
   * Also run the key-use probe ({@link probeKeyUse}: keys used for many operations through
   * `@secure-memory/crypto`, which must then be installed, leave no copy outside protected memory),
   * with its options (`records`, `workload`, `core`); default false. The report's `keyUse` holds
   * its verdict, and a `violated` one makes `ok` false.
   */
  keyUse?: boolean | Pick<KeyUseTarget, 'records' | 'workload' | 'core'>;
}

/** The outcome of one reliability check: `ok` null when it did not run. */
export interface ReliabilityCheck {
  ok: boolean | null;
  detail: string;
}

/** The report of {@link runConformance}. */
export interface ConformanceReport {
  /** A label for this backend and options. */
  name: string;
  /** The backend's own `name` (`unknown` when it could not be loaded). */
  backend: string;
  module: string;
  options: Record<string, unknown>;
  /** What ran: the module and its options, as one line (`@secure-memory/sodium {}`). */
  target: string;
  node: string;
  platform: string;
  /** False when any contract check, bad input, claimed guarantee, required real-use probe or reliability check fails, or a step could not run. */
  ok: boolean;
  /** The step that could not run, and why (a backend that fails to load, throws or dies). */
  failure?: { step: string; reason: string };
  contract: { passed: number; failed: number; checks: CheckResult[] };
  badInputs: { passed: number; failed: number; cases: CheckResult[] };
  guarantees: Record<GuaranteeFlag, GuaranteeVerdict>;
  /** The real-use probes every backend runs, with the flags each bears on. */
  probes: RealUseResult[];
  /** The fixed-seed fuzz, the worker-thread check and the async interleaving. */
  reliability: { fuzz: ReliabilityCheck; workers: ReliabilityCheck; asyncInterleaving: ReliabilityCheck };
  /** What the scanners search for. */
  scan: { windowBytes: number; encodings: string[]; description: string };
  /** Summaries of what the probes saw. */
  evidence: {
    memoryHits: { idle: number; access: number; closed: number };
    /** The encodings in which copies were found, per phase (`raw`, `hex`, `smi-array`, ...). */
    encodings: { idle: string[]; access: string[]; closed: string[] };
    /** Copies in the one core dump, taken during access; null when no core was taken (see `core`). */
    coreDumpHits: { access: number | null };
    core: string;
    regionProbe: boolean;
  } | null;
  /** The key-use probe's verdict, when asked for (`keyUse`) and the backend could be observed. */
  keyUse?: KeyUseReport;
  durationMs: number;
}

/** Validates a target; throws typed errors for bad input. */
export function assertTarget(target: unknown): asserts target is ConformanceTarget {
  assertOptions(target, 'target');
  const t = target as Partial<ConformanceTarget> | undefined;
  if (t === undefined || typeof t.module !== 'string' || t.module === '') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "module" option must be a non-empty module specifier. Received ${describeType(t?.module)}`);
  }
  assertOptions(t.options, 'options');
  if (t.name !== undefined && typeof t.name !== 'string') throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "name" option must be a string. Received ${describeType(t.name)}`);
  if (t.reliability !== undefined && typeof t.reliability !== 'boolean') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "reliability" option must be a boolean. Received ${describeType(t.reliability)}`);
  }
  if (t.keyUse !== undefined && typeof t.keyUse !== 'boolean') {
    assertOptions(t.keyUse, 'keyUse');
    assertKeyUseOptions(t.keyUse);
  }
}

/** `module {options}`: what a report ran. */
export function describeTarget(target: ConformanceTarget): string {
  return `${target.module} ${JSON.stringify(target.options ?? {})}`;
}

const failedCount = (list: CheckResult[]): number => list.filter((c) => !c.ok).length;

const notRun = (why: string): ReliabilityCheck => ({ ok: null, detail: `not run: ${why}` });

/** Verdicts when the probes could not observe anything: every claim violated, nothing else known. */
function unobserved(guarantees: Partial<Guarantees> | undefined, why: string): Record<GuaranteeFlag, GuaranteeVerdict> {
  return Object.fromEntries(
    GUARANTEE_FLAGS.map((flag) => {
      const claimed = guarantees?.[flag] === true;
      return [flag, { claimed, status: claimed ? 'violated' : 'skipped', detail: `cannot be observed: ${why}` }];
    }),
  ) as Record<GuaranteeFlag, GuaranteeVerdict>;
}

interface ReportParts {
  contract: { checks: CheckResult[]; badInputs: CheckResult[] };
  backend: string;
  guarantees: Record<GuaranteeFlag, GuaranteeVerdict>;
  probes: RealUseResult[];
  reliability: ConformanceReport['reliability'];
  evidence: ConformanceReport['evidence'];
  failure?: { step: string; reason: string };
}

function assemble(target: ConformanceTarget, parts: ReportParts, started: number): ConformanceReport {
  const { contract, guarantees, probes, reliability } = parts;
  const ok =
    parts.failure === undefined &&
    failedCount(contract.checks) === 0 &&
    failedCount(contract.badInputs) === 0 &&
    GUARANTEE_FLAGS.every((f) => guarantees[f].status !== 'violated') &&
    probes.every((p) => !p.required || p.passed !== false) &&
    Object.values(reliability).every((r) => r.ok !== false);
  return {
    name: target.name ?? parts.backend,
    backend: parts.backend,
    module: target.module,
    options: target.options ?? {},
    target: describeTarget(target),
    node: process.version,
    platform: `${process.platform}-${process.arch} ${release()}`,
    ok,
    ...(parts.failure === undefined ? {} : { failure: parts.failure }),
    contract: { passed: contract.checks.length - failedCount(contract.checks), failed: failedCount(contract.checks), checks: contract.checks },
    badInputs: { passed: contract.badInputs.length - failedCount(contract.badInputs), failed: failedCount(contract.badInputs), cases: contract.badInputs },
    guarantees,
    probes,
    reliability,
    scan: { windowBytes: WINDOW, encodings: [...ENCODINGS], description: SEARCH_DESCRIPTION },
    evidence: parts.evidence,
    durationMs: Date.now() - started,
  };
}

/** Builds the report from the contract results and the observations. */
export function buildReport(
  target: ConformanceTarget,
  contract: { checks: CheckResult[]; badInputs: CheckResult[] },
  observations: Observations,
  started: number,
  reliability: ConformanceReport['reliability'] = { fuzz: notRun('not asked for'), workers: notRun('not asked for'), asyncInterleaving: notRun('not asked for') },
): ConformanceReport {
  const core = observations.core;
  return assemble(
    target,
    {
      contract,
      backend: observations.name,
      guarantees: judge(observations),
      probes: realUse(observations),
      reliability,
      evidence: {
        memoryHits: {
          idle: observations.scans.idle.hits.length,
          access: observations.scans.access.hits.length,
          closed: observations.scans.closed.hits.length,
        },
        encodings: {
          idle: [...new Set(observations.scans.idle.hits.map((h) => h.encoding))],
          access: [...new Set(observations.scans.access.hits.map((h) => h.encoding))],
          closed: [...new Set(observations.scans.closed.hits.map((h) => h.encoding))],
        },
        coreDumpHits: { access: core.available ? core.hits.length : null },
        core: core.available ? `gcore during access: ${(core.coreBytes / 2 ** 20).toFixed(0)} MiB in ${(core.durationMs / 1000).toFixed(1)} s, ${core.hits.length} copies` : core.reason,
        regionProbe: observations.regions.idle.every((r) => r !== null),
      },
    },
    started,
  );
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ');
}

function describeEnd(run: ChildOutcome): string {
  const error = run.events.find((e) => e.event === 'error');
  if (error !== undefined) return `${String(error.code)}: ${String(error.message)}`;
  const how = run.timedOut === true ? 'was killed by its time limit' : `ended (code ${run.code}, signal ${run.signal})`;
  return `the child ${how}${run.stderr.trim() === '' ? '' : `: ${lastLines(run.stderr)}`}`;
}

/** Runs the fuzz, the worker-thread check and the async interleaving in a child process. */
async function runReliability(base: { module: string; options?: Record<string, unknown> }): Promise<ConformanceReport['reliability']> {
  const run = await runChild({ ...base, mode: 'reliability' });
  const pick = (name: string, what: string): ReliabilityCheck => {
    const e = run.events.find((x) => x.event === name);
    if (e !== undefined) return { ok: e.ok === null ? null : e.ok === true, detail: String(e.detail) };
    return { ok: false, detail: `${what} did not finish: ${describeEnd(run)}` };
  };
  return { fuzz: pick('fuzz', 'the fuzz'), workers: pick('workers', 'the worker-thread check'), asyncInterleaving: pick('interleaving', 'the async interleaving') };
}

/**
 * Runs the contract suite (in a child process), observes every guarantee from outside, runs the
 * real-use probes, and (in another child) the fixed-seed fuzz, the worker-thread check and the
 * async interleaving. Always resolves to a report, also for a backend that fails to load, throws
 * or dies: then `ok` is false and `failure` names the step and the reason.
 * Linux only: the probes read /proc and need gcore (gdb) for core dumps.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for a bad target or progress callback.
 * @example
 * ```ts
 * const report = await runConformance({ module: '@secure-memory/protected-memory' });
 * if (!report.ok) process.exitCode = 1;
 * ```
 */
export async function runConformance(target: ConformanceTarget, progress: Progress = () => {}): Promise<ConformanceReport> {
  assertTarget(target);
  if (typeof progress !== 'function') throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "progress" argument must be a function. Received ${describeType(progress)}`);
  const started = Date.now();
  const base = { module: target.module, ...(target.options === undefined ? {} : { options: target.options }) };
  const noReliability = { fuzz: notRun('reliability: false'), workers: notRun('reliability: false'), asyncInterleaving: notRun('reliability: false') };
  const say = (step: string): void => {
    try {
      progress(step);
    } catch {
      // A progress callback that throws does not stop the run.
    }
  };

  say('running the contract suite in a child process');
  const contractRun = await runChild({ ...base, mode: 'contract' });
  const result = contractRun.events.find((e) => e.event === 'contract') as { name: string; guarantees: Guarantees; checks: CheckResult[]; badInputs: CheckResult[] } | undefined;
  if (result === undefined && contractRun.events.some((e) => e.event === 'error')) {
    // The backend does not even load: nothing else can run.
    const reason = describeEnd(contractRun);
    return assemble(
      target,
      {
        contract: { checks: [{ name: 'the backend loads', ok: false, error: reason }], badInputs: [] },
        backend: 'unknown',
        guarantees: unobserved(undefined, 'the backend could not be loaded'),
        probes: [],
        reliability: { fuzz: notRun('the backend could not be loaded'), workers: notRun('the backend could not be loaded'), asyncInterleaving: notRun('the backend could not be loaded') },
        evidence: null,
        failure: { step: 'loading the backend', reason },
      },
      started,
    );
  }
  const contract = result ?? {
    checks: [{ name: 'the contract suite runs to its end', ok: false, error: describeEnd(contractRun) }],
    badInputs: [],
  };
  const reliability = target.reliability === false ? Promise.resolve(noReliability) : runReliability(base);
  if (target.reliability !== false) say('running the fuzz, the worker threads and the async interleaving in another child');
  let observations: Observations;
  try {
    observations = await observe(target.module, target.options, say);
  } catch (error) {
    const failure = error instanceof ProbeFailure ? { step: error.step, reason: error.reason } : { step: 'observing the backend', reason: String((error as Error).message ?? error) };
    return assemble(
      target,
      {
        contract,
        backend: result?.name ?? 'unknown',
        guarantees: unobserved(result?.guarantees, `${failure.step} failed: ${failure.reason}`),
        probes: [],
        reliability: await reliability,
        evidence: null,
        failure,
      },
      started,
    );
  }
  const report = buildReport(target, contract, observations, started, await reliability);
  if (target.keyUse === undefined || target.keyUse === false) return report;
  say('running the key-use probe');
  const keyUse = await probeKeyUse({ module: target.module, ...(target.options === undefined ? {} : { options: target.options }), ...(target.keyUse === true ? {} : target.keyUse) }, say);
  return { ...report, ok: report.ok && keyUse.status !== 'violated', keyUse, durationMs: Date.now() - started };
}
