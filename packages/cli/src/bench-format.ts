/**
 * The table of `secure-memory bench`: one row per backend and operation, then the floors, then the
 * capacity. The JSON (`--json`) is the report itself.
 * @module
 */
import type { BenchReport } from './bench.js';

function table(header: string[], rows: string[][], left: (column: number) => boolean): string[] {
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map((row) => (row[c] as string).length)));
  const line = (row: string[]): string => row.map((cell, c) => (left(c) ? cell.padEnd(widths[c] as number) : cell.padStart(widths[c] as number))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

const ratio = (r: number | null, spread?: number | null): string => (r === null ? '-' : `${r.toFixed(2)}x${spread === undefined || spread === null ? '' : ` ±${(spread / 2).toFixed(2)}`}`);
const ns = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} ms` : n >= 1e4 ? `${(n / 1e3).toFixed(1)} µs` : `${Math.round(n)} ns`);

/** Formats the report as tables. */
export function formatBench(report: BenchReport): string {
  const cpu = report.clocks.cpu === 'thread' ? 'thread CPU' : 'process CPU';
  const lines = [
    `${report.plan.rounds} rounds, cases interleaved (order rotated each round); figures are medians over rounds, ratios medians of per-round ratios (± half the interquartile range); ${cpu} time unless marked wall; system calls per operation on the main thread ${report.clocks.syscalls === null ? '(not counted: strace is not installed)' : 'under strace'}.`,
    '',
  ];
  const rows = report.results.map((r) => [
    r.name,
    r.operation,
    ns(r.medianNs),
    ns(r.medianWallNs),
    r.ratioToSameWork === undefined ? ratio(r.ratioToFloor, r.ratioSpread) : `${ratio(r.ratioToFloor, r.ratioSpread)} (all its work: ${ratio(r.ratioToSameWork)})`,
    ratio(r.ratioToFloorWall),
    r.peer === null ? '-' : ratio(r.ratioToPeer, r.ratioToPeerSpread),
    r.syscallsPerOp === null ? '-' : r.syscallsPerOp.toFixed(2),
    r.throughputMBps === undefined ? '' : `${Math.round(r.throughputMBps)} MB/s`,
  ]);
  lines.push(...table(['backend', 'operation', 'cpu', 'wall', 'x floor', 'x floor (wall)', 'x peer', 'calls/op', 'throughput'], rows, (c) => c < 2));
  if (report.floors.length > 0) {
    lines.push('', `floors (the same work in C; peers: raw sodium-native drained for the contract operations, node:crypto with a heap key for the crypto ones)`);
    const seen = new Map<string, (typeof report.floors)[number]>();
    for (const f of report.floors) if (!seen.has(f.floor)) seen.set(f.floor, f);
    const floorRows = [...seen.values()].map((f) => [f.floor, ns(f.medianNs), ns(f.medianWallNs), f.syscallsPerOp === null ? '-' : f.syscallsPerOp.toFixed(2), f.calls.join(', ')]);
    lines.push(...table(['floor', 'cpu', 'wall', 'calls/op', 'one iteration'], floorRows, (c) => c === 0 || c === 4));
  } else {
    lines.push('', 'no floors: @secure-memory/memguard/bench is not built here (a development addon)');
  }
  if (report.capacity.length > 0) {
    lines.push('', `capacity: live 32-byte secrets under the RLIMIT_MEMLOCK in force${report.capacity.some((c) => c.unprivileged) ? ', as nobody' : ''}`);
    const capRows = report.capacity.map((c) => [
      c.backend,
      c.stoppedBy === null ? `>= ${c.secrets}` : String(c.secrets),
      c.stoppedBy ?? `cap (${c.cap})`,
      String(c.lockedBytesPerSecret),
      String(c.mappingsPerSecret),
      String(c.rssBytesPerSecret),
      String(c.ms),
    ]);
    lines.push(...table(['backend', 'secrets', 'stopped by', 'locked B/secret', 'mappings/secret', 'RSS B/secret', 'ms'], capRows, (c) => c === 0 || c === 2));
  }
  return lines.join('\n');
}
