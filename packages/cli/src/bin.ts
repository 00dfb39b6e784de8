#!/usr/bin/env node
/**
 * The `secure-memory` command.
 * @module
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { resolveBackendSpecifier } from '@secure-memory/core/backend';
import { formatDoctor, runDoctor } from './doctor.js';
import { FULL_PLAN, SHORT_PLAN, formatBench, runBench } from './bench.js';
import { DEFAULT_TARGETS, type MatrixTarget, availableTargets, formatMatrix, recommend, runMatrix } from './matrix.js';
import { formatFuzz, runFuzzTargets } from './fuzz.js';
import { FULL_SOAK, formatSoak, runSoak } from './soak.js';

const USAGE = `Usage: secure-memory <command> [options]

Commands:
  report [--json]                the doctor, the conformance matrix of every installed backend, a short
                                 benchmark, and the backend recommended for this machine
  doctor [--json]                what this machine offers secure memory
  bench [--json] [--short]       each backend's operations against the native floor and against peers
  conformance [--backend X] [--options JSON] [--json]
                                 prove a backend's guarantees from outside the process (exit 1 when not ok);
                                 without --backend, every installed backend and the control
  fuzz [--backend X] [--options JSON] [--seed N] [--runs N] [--path P [--replay-path R]] [--json]
                                 model-based fuzzing of the contract, each backend and mode in a child
                                 process; a random seed unless given (printed first); a failure prints
                                 its seed, path and shrunk command sequence, a crash the run (exit 1)
  soak [--backend X] [--options JSON] [--ops N] [--secrets N] [--json]
                                 N mixed operations (default 1,000,000) over many live secrets (default
                                 1000) per backend and mode, each in a fresh process; then locked memory,
                                 the backend's mappings and open descriptors must be back at their
                                 baseline and memory flat (exit 1 when not)
Options:
  --json         machine-readable output on stdout (progress stays on stderr)
  -h, --help     this text
  -v, --version  the version of the command

Each command takes only the options shown beside it. Exit status: 0 when all is well, 1 when a
check failed (a report not ok, a backend that does not load, an error while running), 2 for a
usage error (an unknown command or option, a bad value).`;

/** The options each command takes (besides --help and --version). */
const COMMAND_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  report: ['json'],
  doctor: ['json'],
  bench: ['json', 'short'],
  conformance: ['backend', 'options', 'json'],
  fuzz: ['backend', 'options', 'seed', 'runs', 'path', 'replay-path', 'json'],
  soak: ['backend', 'options', 'ops', 'secrets', 'json'],
};

/** This package's version, from its package.json. */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The backends the benchmark measures: every matrix column but the control. */
const BENCH_TARGETS = DEFAULT_TARGETS.filter((t) => t.name !== 'control');

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/** A whole number from `min` to `max`, or a usage error. */
function integer(value: string, name: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(value.replace(/_/g, '')) ? Number(value.replace(/_/g, '')) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) fail(`${name} must be a whole number from ${min} to ${max}`);
  return n;
}

function fail(message: string): never {
  process.stderr.write(`secure-memory: ${message}\n\n${USAGE}\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        backend: { type: 'string' },
        options: { type: 'string' },
        short: { type: 'boolean' },
        seed: { type: 'string' },
        runs: { type: 'string' },
        path: { type: 'string' },
        'replay-path': { type: 'string' },
        ops: { type: 'string' },
        secrets: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    fail((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version === true) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help === true || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const allowed = COMMAND_OPTIONS[command];
  if (allowed === undefined) fail(`unknown command "${command}"`);
  if (positionals.length > 1) fail(`unexpected argument "${positionals[1]}"`);
  const misplaced = Object.keys(values).filter((name) => !allowed.includes(name));
  if (misplaced.length > 0) fail(`${command} does not take --${misplaced[0]}`);

  if (command === 'doctor') {
    const items = await runDoctor();
    process.stdout.write(values.json ? `${JSON.stringify(Object.fromEntries(items.map((i) => [i.key, i.value])), null, 2)}\n` : `${formatDoctor(items)}\n`);
    return 0;
  }

  if (command === 'bench') {
    const { ready } = await availableTargets(BENCH_TARGETS);
    const report = await runBench(ready, values.short ? SHORT_PLAN : FULL_PLAN, log);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatBench(report)}\n`);
    return 0;
  }

  /** The targets named by --backend and --options, or `defaults`. */
  const chooseTargets = (defaults: readonly MatrixTarget[]): readonly MatrixTarget[] => {
    if (values.backend === undefined) {
      if (values.options !== undefined) fail('--options needs --backend');
      return defaults;
    }
    let options: Record<string, unknown> | undefined;
    if (values.options !== undefined) {
      try {
        options = JSON.parse(values.options) as Record<string, unknown>;
      } catch {
        fail('--options must be a JSON object');
      }
      if (typeof options !== 'object' || options === null || Array.isArray(options)) fail('--options must be a JSON object');
    }
    return [{ name: values.backend, module: resolveBackendSpecifier(values.backend), ...(options ? { options } : {}) }];
  };
  /** The targets that load here; with --backend, exits 1 when it does not. */
  const loadable = async (targets: readonly MatrixTarget[]): Promise<{ ready: MatrixTarget[]; missing: { name: string; reason: string }[] } | undefined> => {
    const found = await availableTargets(targets);
    if (values.backend !== undefined && found.ready.length === 0) {
      log(`secure-memory: ${found.missing[0]?.name}: ${found.missing[0]?.reason}`);
      return undefined;
    }
    for (const m of found.missing) log(`secure-memory: ${m.name}: not run (${m.reason})`);
    return found;
  };

  if (command === 'fuzz') {
    const seed = values.seed === undefined ? (Date.now() ^ (Math.random() * 0x100000000)) | 0 : integer(values.seed, '--seed', -(2 ** 31), 2 ** 31 - 1);
    const numRuns = values.runs === undefined ? 1000 : integer(values.runs, '--runs', 1, 2 ** 31 - 1);
    if (values['replay-path'] !== undefined && values.path === undefined) fail('--replay-path needs --path');
    if (values.path !== undefined && (values.seed === undefined || !/^\d+(:\d+)*$/.test(values.path))) fail('--path needs --seed and looks like 3 or 3:1:0');
    // The seed first, before anything can crash.
    log(`secure-memory fuzz: seed ${seed}`);
    const found = await loadable(chooseTargets(BENCH_TARGETS));
    if (found === undefined) return 1;
    const reports = await runFuzzTargets(
      found.ready,
      { seed, numRuns, ...(values.path === undefined ? {} : { path: values.path }), ...(values['replay-path'] === undefined ? {} : { replayPath: values['replay-path'] }) },
      log,
    );
    process.stdout.write(values.json ? `${JSON.stringify({ seed, numRuns, reports, missing: found.missing }, null, 2)}\n` : `seed ${seed}\n\n${formatFuzz(reports)}\n`);
    return reports.every((r) => r.ok) ? 0 : 1;
  }

  if (command === 'soak') {
    const operations = values.ops === undefined ? FULL_SOAK.operations : integer(values.ops, '--ops', 1, 1e9);
    const liveSecrets = values.secrets === undefined ? FULL_SOAK.liveSecrets : integer(values.secrets, '--secrets', 1, 100_000);
    const found = await loadable(chooseTargets(BENCH_TARGETS));
    if (found === undefined) return 1;
    const reports = await runSoak(found.ready, { operations, liveSecrets }, log);
    process.stdout.write(values.json ? `${JSON.stringify({ reports, missing: found.missing }, null, 2)}\n` : `${formatSoak(reports)}\n`);
    return reports.every((r) => r.ok) ? 0 : 1;
  }

  if (command === 'conformance' || command === 'report') {
    const targets = chooseTargets(DEFAULT_TARGETS);
    if (command === 'report' && !values.json) process.stdout.write(`Doctor\n\n${formatDoctor(await runDoctor())}\n\n`);
    // A named backend is always run, so that one that fails to load, throws or dies still gets a report.
    const { ready, missing } = values.backend !== undefined ? { ready: [...targets], missing: [] } : await availableTargets(targets);
    const reports = await runMatrix(ready, log);
    if (command === 'conformance') {
      process.stdout.write(values.json ? `${JSON.stringify({ reports, missing }, null, 2)}\n` : `${formatMatrix(reports, missing)}\n`);
      return reports.every((r) => r.ok) ? 0 : 1;
    }
    const { ready: benchable } = await availableTargets(BENCH_TARGETS);
    const bench = await runBench(benchable, SHORT_PLAN, log);
    const recommendation = recommend(reports, bench);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ doctor: Object.fromEntries((await runDoctor()).map((i) => [i.key, i.value])), reports, missing, bench, recommendation }, null, 2)}\n`);
    } else {
      process.stdout.write(`Conformance\n\n${formatMatrix(reports, missing)}\n\nBenchmark (short run)\n\n${formatBench(bench)}\n\nRecommendation\n\n${recommendation.text}\n`);
    }
    return reports.every((r) => r.ok) ? 0 : 1;
  }

  fail(`unknown command "${command}"`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`secure-memory: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
