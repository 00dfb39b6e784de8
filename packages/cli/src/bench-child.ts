/**
 * The child `secure-memory bench` counts system calls in, under strace: it builds the run's cases,
 * then for each one marks the start, runs the operations (drained), and marks the end; first an
 * empty batch, whose calls are the harness's own. It prints the case ids, in order, as JSON.
 * argv[2]: `{ targets, ops, liveSecrets }`.
 * @module
 */
import { buildCases } from './bench-cases.js';
import { loadClocks, mark, runOps } from './bench-harness.js';
import type { MatrixTarget } from './matrix.js';

const { targets, ops, liveSecrets } = JSON.parse(process.argv[2] ?? '{}') as { targets: MatrixTarget[]; ops: number; liveSecrets: number[] };
const clocks = await loadClocks();
const { cases } = await buildCases(targets, clocks.runFloor, () => {}, liveSecrets);
const ids: string[] = [];
const noop = { kind: 'sync' as const, op: () => 0, teardown: () => {} };
await runOps(noop, 10);
mark('baseline:start');
await runOps(noop, ops);
mark('baseline:end');
for (const c of cases) {
  let runner;
  try {
    runner = c.setup();
  } catch {
    ids.push(c.id);
    continue; // skipped in the timing run too
  }
  try {
    await runOps(runner, Math.min(ops, 20)); // warm: pools filled, code compiled
    mark(`${ids.length}:start`);
    await runOps(runner, ops);
    mark(`${ids.length}:end`);
  } finally {
    ids.push(c.id);
    runner.teardown();
  }
}
process.stdout.write(`${JSON.stringify(ids)}\n`);
