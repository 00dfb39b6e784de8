/**
 * One worker thread of the concurrency check: it loads the backend module itself, waits at the
 * start line until every worker is ready, runs the mixed workload on its own secrets, and posts
 * what it found. Started by `runWorkers` as `new Worker(dist/concurrency-worker.js, { workerData })`.
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadTarget } from './load.js';
import { runWorkload } from './workload.js';

interface WorkerConfig {
  module: string;
  options?: Record<string, unknown>;
  seed: number;
  operations: number;
  liveSecrets: number;
  /** [arrived, go]: each worker adds one to `arrived`, then waits until `go` is 1. */
  start: SharedArrayBuffer;
}

const config = workerData as WorkerConfig;
const port = parentPort;
if (port === null) throw new Error('concurrency-worker.js runs only as a worker thread');

try {
  const factory = await loadTarget(config.module, config.options);
  const flags = new Int32Array(config.start);
  Atomics.add(flags, 0, 1);
  Atomics.notify(flags, 0);
  Atomics.wait(flags, 1, 0);
  const result = await runWorkload(factory, { operations: config.operations, liveSecrets: config.liveSecrets, seed: config.seed });
  const stats = factory.stats();
  port.postMessage({ ok: true, result, inUse: stats.inUse, lockedBytes: stats.lockedBytes });
} catch (error) {
  port.postMessage({ ok: false, code: (error as { code?: unknown }).code ?? null, message: String((error as Error).message ?? error) });
}
