/**
 * The conformance matrix: every installed backend (and the control) through `runConformance`,
 * shown as rows of guarantees and columns of backends.
 * @module
 */
import { BACKENDS, GUARANTEE_FLAGS, loadBackend } from '@secure-memory/core';
import { type ConformanceReport, type ConformanceTarget, runConformance } from '@secure-memory/testkit';
import type { BenchReport } from './bench.js';

/** A column of the matrix. */
export interface MatrixTarget extends ConformanceTarget {
  name: string;
}

/**
 * The columns the matrix tries, in order: the control, then every mode of every backend in core's
 * registry (`BACKENDS`); those that do not load here are listed as missing.
 */
export const DEFAULT_TARGETS: readonly MatrixTarget[] = [
  { name: 'control', module: '@secure-memory/testkit/control' },
  ...BACKENDS.flatMap((b) => b.modes.map((m) => ({ name: m.label, module: b.module, ...(m.options === undefined ? {} : { options: { ...m.options } }) }))),
];

/** A column that could not run, with the reason. */
export interface MissingTarget {
  name: string;
  reason: string;
}

/** Splits targets into those that load here and those that do not. */
export async function availableTargets(targets: readonly MatrixTarget[]): Promise<{ ready: MatrixTarget[]; missing: MissingTarget[] }> {
  const ready: MatrixTarget[] = [];
  const missing: MissingTarget[] = [];
  for (const target of targets) {
    try {
      await loadBackend(target.module, target.options);
      ready.push(target);
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code === 'ERR_MODULE_NOT_FOUND' || cause?.code === 'MODULE_NOT_FOUND' ? 'not installed' : `${(error as { code?: string }).code ?? 'error'}: ${cause?.message ?? (error as Error).message}`;
      missing.push({ name: target.name, reason });
    }
  }
  return { ready, missing };
}

/** Runs every target in turn, reporting progress on `log`. */
export async function runMatrix(targets: readonly MatrixTarget[], log: (line: string) => void): Promise<ConformanceReport[]> {
  const reports: ConformanceReport[] = [];
  for (const [index, target] of targets.entries()) {
    const prefix = `[${index + 1}/${targets.length} ${target.name}]`;
    log(`${prefix} starting`);
    const report = await runConformance(target, (step) => log(`${prefix} ${step}`));
    log(`${prefix} ${report.ok ? 'ok' : 'NOT OK'} in ${(report.durationMs / 1000).toFixed(1)} s`);
    reports.push(report);
  }
  return reports;
}

const check = (ok: boolean | null): string => (ok === null ? 'not run' : ok ? 'ok' : 'FAILED');

/** Formats reports as a table: guarantees down, backends across; then what ran and every failure. */
export function formatMatrix(reports: ConformanceReport[], missing: MissingTarget[] = []): string {
  const header = ['', ...reports.map((r) => r.name)];
  const rows: string[][] = [
    ...GUARANTEE_FLAGS.map((flag) => [flag, ...reports.map((r) => r.guarantees[flag].status)]),
    ['contract checks', ...reports.map((r) => `${r.contract.passed}/${r.contract.passed + r.contract.failed}`)],
    ['bad inputs', ...reports.map((r) => `${r.badInputs.passed}/${r.badInputs.passed + r.badInputs.failed}`)],
    ...(['fuzz', 'workers', 'asyncInterleaving'] as const).map((k) => [k === 'asyncInterleaving' ? 'async interleaving' : k, ...reports.map((r) => check(r.reliability[k].ok))]),
    ['real-use probes', ...reports.map((r) => `${r.probes.filter((p) => p.passed === true).length}/${r.probes.filter((p) => p.passed !== null).length}`)],
    ['conformance', ...reports.map((r) => (r.ok ? 'ok' : 'NOT OK'))],
  ];
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map((row) => (row[c] ?? '').length)));
  const line = (row: string[]): string => row.map((cell, c) => cell.padEnd(widths[c] as number)).join('  ').trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
  out.push('', 'verified = claimed and observed; violated = claimed, not observed; holds = not claimed, observed;');
  out.push('absent = not claimed, not observed; skipped = not claimed, cannot be probed here.');
  if (reports[0] !== undefined) out.push(`Scans search ${reports[0].scan.description}.`);
  out.push('', 'What ran:', ...reports.map((r) => `  ${r.name}: ${r.target} on Node.js ${r.node}${r.evidence === null ? '' : `; ${r.evidence.core}`}`));
  for (const report of reports) {
    const failures = [
      ...(report.failure === undefined ? [] : [`could not run ${report.failure.step}: ${report.failure.reason}`]),
      ...Object.entries(report.reliability).filter(([, c]) => c.ok === false).map(([k, c]) => `${k}: ${c.detail}`),
      ...report.probes.filter((p) => p.passed === false).map((p) => `real use${p.required ? '' : ` (bears on ${p.bearsOn.join(', ')})`}: ${p.name}: ${p.detail}`),
      ...report.contract.checks.filter((c) => !c.ok).map((c) => `contract: ${c.name}: ${c.error}`),
      ...report.badInputs.cases.filter((c) => !c.ok).map((c) => `bad input: ${c.name}: ${c.error}`),
      ...GUARANTEE_FLAGS.filter((f) => report.guarantees[f].status === 'violated').map((f) => `${f}: ${report.guarantees[f].detail}`),
    ];
    if (failures.length > 0) out.push("", `${report.name} ${report.ok ? "conforms; what it does not keep" : "fails"}:`, ...failures.map((f) => `  - ${f}`));
  }
  for (const m of missing) out.push(`${m.name}: not run (${m.reason})`);
  return out.join('\n');
}

/** The backend recommended for this machine, with its reasons. */
export interface Recommendation {
  name: string | null;
  verified: string[];
  text: string;
}

/**
 * Recommends the conforming backend (not the control) with the most verified guarantees here; a
 * tie goes to the faster `withBytes` in the benchmark.
 */
export function recommend(reports: ConformanceReport[], bench?: BenchReport): Recommendation {
  const candidates = reports.filter((r) => r.ok && r.backend !== 'control');
  if (candidates.length === 0) return { name: null, verified: [], text: `No installed backend conforms here: install one of ${BACKENDS.map((b) => b.module).join(', ')}.` };
  const verified = (r: ConformanceReport): string[] => GUARANTEE_FLAGS.filter((f) => r.guarantees[f].status === 'verified');
  const speed = (r: ConformanceReport): number =>
    bench?.results.find((b) => b.name === r.name && b.operation === 'withBytes')?.medianNs ?? Number.POSITIVE_INFINITY;
  const [best] = [...candidates].sort((a, b) => verified(b).length - verified(a).length || speed(a) - speed(b));
  const chosen = best as ConformanceReport;
  const mine = verified(chosen);
  const others = candidates.filter((r) => r !== chosen);
  const unique = mine.filter((f) => others.every((o) => o.guarantees[f as keyof ConformanceReport['guarantees']].status !== 'verified'));
  const lines = [
    `${chosen.name}: ${mine.length} of ${GUARANTEE_FLAGS.length} guarantees verified on this machine (${mine.join(', ')}).`,
  ];
  if (unique.length > 0) lines.push(`Only it keeps here: ${unique.join(', ')}.`);
  const ns = speed(chosen);
  if (Number.isFinite(ns)) lines.push(`withBytes costs ${Math.round(ns)} ns here.`);
  lines.push(`Use it with createSecretFactory({ backend: '${chosen.module.replace('@secure-memory/', '')}'${Object.keys(chosen.options).length > 0 ? `, options: ${JSON.stringify(chosen.options)}` : ''} }), or SECURE_MEMORY_BACKEND.`);
  return { name: chosen.name, verified: mine, text: lines.join('\n') };
}
