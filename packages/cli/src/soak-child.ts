/**
 * The child of `secure-memory soak`: one backend and mode in a fresh process (run with
 * `--expose-gc`). It warms up (so that pools, keys and the JIT reach their steady state), closes
 * everything and measures the baseline; runs the mixed workload over many live secrets, sampling
 * as it goes; closes everything and measures again. It reports JSON lines: `progress` events and
 * one `result`. `node --expose-gc soak-child.js '<{"module","options","operations","liveSecrets","warmup","seed"}>'`
 * @module
 */
import { closeSync, openSync, readdirSync } from 'node:fs';
import { getHeapStatistics } from 'node:v8';
import { loadBackend, type SecretFactory } from '@secure-memory/core';
import { readMapCount, readStatusBytes } from '@secure-memory/core/backend';
import { expectedDigest, isSecretMemory, readMappings, runWorkload, sendError, sendEvent } from '@secure-memory/testkit';

/** What the soak child measures at one moment. */
export interface SoakSample {
  /** Operations done when it was taken. */
  done: number;
  /** VmLck of the process, bytes. */
  vmLck: number;
  /** Mappings of the process (/proc/self/maps lines). */
  mappings: number;
  /** Mappings that are locked, not dumped or wiped on fork, or secret memory: the backend's own. */
  protectedMappings: number | null;
  /**
   * Bytes the backend's mappings span. Judged instead of their count: the kernel merges adjacent
   * mappings with the same flags, so the count depends on where mappings happened to land.
   */
  protectedBytes: number | null;
  /** Open file descriptors (/proc/self/fd). */
  fds: number;
  /** VmRSS, bytes. */
  rss: number;
  /** The V8 heap in use, bytes. */
  heapUsed: number;
  /** The V8 heap committed, bytes. */
  heapTotal: number;
  /** The V8 heap resident in RAM, bytes: RSS less this is native memory (malloc, addons, mappings). */
  heapPhysical: number;
  inUse: number;
  lockedBytes: number;
}

interface SoakConfig {
  module: string;
  options?: Record<string, unknown>;
  operations: number;
  liveSecrets: number;
  warmup: number;
  seed: number;
}

// Not `dc` (MADV_DONTFORK): V8 sets it on its own heap pages.
const PROTECTED_FLAGS = new Set(['lo', 'dd', 'wf']);
const gc = (globalThis as { gc?: () => void }).gc;

function sample(factory: SecretFactory, done: number, full: boolean): SoakSample {
  const stats = factory.stats();
  const memory = process.memoryUsage();
  const backend = full ? readMappings('self').filter((m) => isSecretMemory(m) || m.vmFlags.some((f) => PROTECTED_FLAGS.has(f))) : null;
  return {
    done,
    vmLck: readStatusBytes('VmLck') ?? 0,
    mappings: readMapCount() ?? 0,
    protectedMappings: backend === null ? null : backend.length,
    protectedBytes: backend === null ? null : backend.reduce((sum, m) => sum + Number(m.end - m.start), 0),
    fds: readdirSync('/proc/self/fd').length,
    rss: readStatusBytes('VmRSS') ?? 0,
    heapUsed: memory.heapUsed,
    heapTotal: memory.heapTotal,
    heapPhysical: getHeapStatistics().total_physical_size,
    inUse: stats.inUse,
    lockedBytes: stats.lockedBytes,
  };
}

/**
 * Fills any pool the backend keeps to its bound before the baseline: 32 accesses at once (more
 * than the workload ever holds) on secrets of each page count the workload uses (1 to 4 pages).
 */
async function primePools(factory: SecretFactory): Promise<void> {
  for (const size of [1, 4096, 8192, 12_287]) {
    const secrets = Array.from({ length: 32 }, () => factory.createRandom(size));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const accesses = secrets.map((s) => s.withBytesAsync(() => gate));
    release();
    await Promise.all(accesses);
    for (const s of secrets) s.close();
  }
}

/**
 * Collects garbage (when exposed) and lets finalizers run until the backend's footprint stops
 * changing, then samples with the smaps counts. V8 frees the memory of collected ArrayBuffers on a
 * background thread after a collection, and a backend may keep a view's region mapped until its
 * ArrayBuffer is freed (memguard does, so that a kept view faults instead of reading a reused
 * region): one collection is not always enough. Settled means three rounds in a row alike (at most
 * 50 rounds); the figures are judged by the parent, not here.
 */
async function settle(factory: SecretFactory, done: number): Promise<SoakSample> {
  let last = '';
  let alike = 0;
  for (let round = 0; round < 50 && alike < 3; round += 1) {
    gc?.();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const s = sample(factory, done, true);
    const key = `${s.vmLck}/${s.protectedBytes}/${s.inUse}/${s.lockedBytes}`;
    alike = key === last ? alike + 1 : 0;
    last = key;
  }
  return sample(factory, done, true);
}

const config = JSON.parse(process.argv[2] ?? '{}') as SoakConfig;
try {
  const factory = await loadBackend(config.module, config.options);
  const urandom = openSync('/dev/urandom', 'r');
  const started = Date.now();
  const common = { liveSecrets: config.liveSecrets, ...(typeof factory.fromFd === 'function' ? { fd: urandom } : {}) };
  await primePools(factory);
  const warm = await runWorkload(factory, { ...common, operations: config.warmup, seed: config.seed + 1 });
  const before = await settle(factory, 0);
  sendEvent({ event: 'baseline', before });
  const samples: SoakSample[] = [];
  const every = Math.max(1000, Math.round(config.operations / 20));
  const result = await runWorkload(factory, {
    ...common,
    operations: config.operations,
    seed: config.seed,
    progressEvery: every,
    onProgress: (done) => {
      // Collected first, so that a sample counts what is live, not garbage the collector has yet to reach.
      gc?.();
      const s = sample(factory, done, false);
      samples.push(s);
      sendEvent({ event: 'progress', done, rss: s.rss, vmLck: s.vmLck, mappings: s.mappings });
    },
  });
  const after = await settle(factory, result.operations);
  closeSync(urandom);
  sendEvent({
    event: 'result',
    gcExposed: gc !== undefined,
    warmupOperations: warm.operations,
    operations: result.operations,
    byKind: result.byKind,
    secretsMade: result.secretsMade,
    mismatches: result.mismatches + warm.mismatches,
    ...(result.firstMismatch === undefined ? {} : { firstMismatch: result.firstMismatch }),
    digestMatches: result.digest === expectedDigest(result.survivors),
    before,
    after,
    samples,
    durationMs: Date.now() - started,
  });
  process.exit(0);
} catch (error) {
  sendError(error);
  process.exit(2);
}
