#!/usr/bin/env node
/**
 * The `secure-memory` command.
 * @module
 */
import { parseArgs } from 'node:util';
import { resolveBackendSpecifier } from '@secure-memory/core';
import { formatDoctor, runDoctor } from './doctor.js';
import { FULL_PLAN, SHORT_PLAN, formatBench, runBench } from './bench.js';
import { DEFAULT_TARGETS, type MatrixTarget, availableTargets, formatMatrix, recommend, runMatrix } from './matrix.js';

const USAGE = `Usage: secure-memory <command> [options]

Commands:
  report [--json]                the doctor, the conformance matrix of every installed backend, a short
                                 benchmark, and the backend recommended for this machine
  doctor [--json]                what this machine offers secure memory
  bench [--json] [--short]       each backend's operations against the native floor and against peers
  conformance [--backend X] [--options JSON] [--json]
                                 prove a backend's guarantees from outside the process (exit 1 when not ok);
                                 without --backend, every installed backend and the control
Options:
  --json     machine-readable output on stdout (progress stays on stderr)
  -h, --help this text`;

/** The backends the benchmark measures: every matrix column but the control. */
const BENCH_TARGETS = DEFAULT_TARGETS.filter((t) => t.name !== 'control');

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

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
        json: { type: 'boolean', default: false },
        backend: { type: 'string' },
        options: { type: 'string' },
        short: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    fail((error as Error).message);
  }
  const { values, positionals } = parsed;
  const command = positionals[0] ?? 'report';
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length > 1) fail(`unexpected argument "${positionals[1]}"`);

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

  if (command === 'conformance' || command === 'report') {
    let targets: readonly MatrixTarget[] = DEFAULT_TARGETS;
    if (values.backend !== undefined) {
      let options: Record<string, unknown> | undefined;
      if (values.options !== undefined) {
        try {
          options = JSON.parse(values.options) as Record<string, unknown>;
        } catch {
          fail('--options must be a JSON object');
        }
        if (typeof options !== 'object' || options === null || Array.isArray(options)) fail('--options must be a JSON object');
      }
      targets = [{ name: values.backend, module: resolveBackendSpecifier(values.backend), ...(options ? { options } : {}) }];
    } else if (values.options !== undefined) {
      fail('--options needs --backend');
    }
    if (command === 'report' && !values.json) process.stdout.write(`Doctor\n\n${formatDoctor(await runDoctor())}\n\n`);
    const { ready, missing } = await availableTargets(targets);
    if (values.backend !== undefined && ready.length === 0) {
      log(`secure-memory: ${missing[0]?.name}: ${missing[0]?.reason}`);
      return 1;
    }
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
    process.exitCode = 2;
  },
);
