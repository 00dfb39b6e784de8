/**
 * Concurrency checks: secrets used from several worker threads at once (each thread loads the
 * backend module and makes its own secrets), and heavy async interleaving in one thread.
 * @module
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { assertOptions } from '@secure-memory/core/backend';
import { patternBytes } from './pattern.js';
import { type WorkloadResult, createRng, expectedDigest, runWorkload } from './workload.js';

/** The compiled worker script; the same path from src/ (tests) and dist/. */
export const WORKER_SCRIPT = fileURLToPath(new URL('../dist/concurrency-worker.js', import.meta.url));

/**
 * The parent's Node flags without its export conditions: a test runner that resolves sources
 * (vitest with `@secure-memory/source`) passes them on, and a worker must load the built packages.
 */
function workerExecArgv(): string[] {
  const out: string[] = [];
  for (let i = 0; i < process.execArgv.length; i += 1) {
    const arg = process.execArgv[i] as string;
    if (arg === '--conditions' || arg === '-C') i += 1;
    else if (!arg.startsWith('--conditions=') && !arg.startsWith('-C=')) out.push(arg);
  }
  return out;
}

/** Options of {@link runWorkers}. */
export interface WorkersOptions {
  module: string;
  options?: Record<string, unknown>;
  /** Worker threads (default 4). */
  workers?: number;
  /** Operations per thread (default 3000). */
  operations?: number;
  /** Live secrets per thread (default 16). */
  liveSecrets?: number;
  /** Seeds each thread's workload (thread i uses seed + i). */
  seed?: number;
  /** A factory of the same backend in this thread: it runs the same workload while the workers run. */
  mainFactory?: SecretFactory;
}

/** What one thread reported. */
export interface ThreadReport {
  thread: string;
  ok: boolean;
  operations: number;
  /** The survivors' bytes matched the ones the parent derived from their seeds. */
  digestMatches: boolean;
  mismatches: number;
  /** `stats().inUse` after the thread closed every secret (0 expected). */
  inUse: number | null;
  error?: string;
}

/** The result of {@link runWorkers}. */
export interface WorkersResult {
  ok: boolean;
  threads: ThreadReport[];
  operations: number;
}

function judgeWorkload(thread: string, result: WorkloadResult, inUse: number | null): ThreadReport {
  const digestMatches = result.digest === expectedDigest(result.survivors);
  return {
    thread,
    ok: digestMatches && result.mismatches === 0 && inUse === 0,
    operations: result.operations,
    digestMatches,
    mismatches: result.mismatches,
    inUse,
    ...(result.firstMismatch === undefined ? {} : { error: result.firstMismatch }),
  };
}

/**
 * Starts `workers` threads that each load the backend module, wait at a common start line, then
 * run the mixed workload on their own secrets at the same time (and, with `mainFactory`, this
 * thread too). Each thread checks every read against its copies; the parent checks that each
 * thread's surviving secrets hold the bytes it derives from their seeds, and that every thread
 * freed every secret.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for bad options.
 */
export async function runWorkers(config: WorkersOptions): Promise<WorkersResult> {
  assertOptions(config, 'config');
  assertOptions(config.options, 'options');
  const count = config.workers ?? 4;
  const operations = config.operations ?? 3000;
  const liveSecrets = config.liveSecrets ?? 16;
  const seed = config.seed ?? 1;
  const start = new SharedArrayBuffer(8);
  const flags = new Int32Array(start);
  const outcomes = Array.from({ length: count }, (_, i) => {
    const worker = new Worker(WORKER_SCRIPT, {
      execArgv: workerExecArgv(),
      workerData: { module: config.module, options: config.options, seed: seed + i + 1, operations, liveSecrets, start },
    });
    return new Promise<ThreadReport>((resolve) => {
      const thread = `worker ${i + 1}`;
      const failed = (error: string): ThreadReport => ({ thread, ok: false, operations: 0, digestMatches: false, mismatches: 0, inUse: null, error });
      worker.once('message', (message: { ok: boolean; result?: WorkloadResult; inUse?: number; code?: string; message?: string }) => {
        resolve(message.ok ? judgeWorkload(thread, message.result as WorkloadResult, message.inUse ?? null) : failed(`${message.code ?? 'error'}: ${message.message ?? ''}`));
        void worker.terminate();
      });
      worker.once('error', (error) => resolve(failed(`the thread threw: ${error.message}`)));
      worker.once('exit', (code) => resolve(failed(`the thread exited with code ${code} before reporting`)));
    });
  });
  // Wait (without blocking this thread's event loop) until every worker has loaded the backend or
  // failed, then start them together.
  let ended = 0;
  for (const outcome of outcomes) void outcome.then(() => (ended += 1));
  while (Atomics.load(flags, 0) + ended < count) await new Promise((resolve) => setTimeout(resolve, 2));
  Atomics.store(flags, 1, 1);
  Atomics.notify(flags, 1);
  const threads: Promise<ThreadReport>[] = [...outcomes];
  if (config.mainFactory !== undefined) {
    const factory = config.mainFactory;
    const before = factory.stats().inUse;
    threads.push(
      runWorkload(factory, { operations, liveSecrets, seed }).then(
        (result) => judgeWorkload('main thread', result, factory.stats().inUse - before),
        (error: unknown) => ({ thread: 'main thread', ok: false, operations: 0, digestMatches: false, mismatches: 0, inUse: null, error: String(error) }),
      ),
    );
  }
  const reports = await Promise.all(threads);
  return { ok: reports.every((r) => r.ok), threads: reports, operations: reports.reduce((n, r) => n + r.operations, 0) };
}

/** Options of {@link runAsyncInterleaving}. */
export interface InterleavingOptions {
  /** Async accesses to start (default 600). */
  accesses?: number;
  /** Secrets they share (default 4); a closed one is replaced. */
  secrets?: number;
  /** Seeds the choices (the timing of settlements still varies from run to run). */
  seed?: number;
}

/** The result of {@link runAsyncInterleaving}. */
export interface InterleavingResult {
  ok: boolean;
  accesses: number;
  /** The most accesses pending at once. */
  maxPending: number;
  closes: number;
  /** Accesses started on a secret already closed, which rejected with ERR_SECRET_CLOSED as they must. */
  refused: number;
  /** Each kind of problem found, with its first occurrence and count; empty when all is well. */
  problems: string[];
}

/** Resolves after `n` turns of the event loop (`setImmediate`), so the order of waits never depends on the clock. */
const turns = (n: number): Promise<void> =>
  new Promise((resolve) => {
    const step = (left: number): void => {
      if (left === 0) resolve();
      else setImmediate(step, left - 1);
    };
    step(n);
  });

/**
 * A random wait: a microtask, one turn, or several turns of the event loop. No timers: with a seed,
 * the interleaving is the same on an idle machine and on a busy one.
 */
const delay = (rng: () => number): Promise<void> => {
  const r = rng();
  if (r < 0.3) return Promise.resolve();
  if (r < 0.6) return turns(1);
  return turns(2 + Math.floor(rng() * 4));
};

/**
 * Heavy async interleaving in one thread: hundreds of overlapping `withBytesAsync` on a few
 * secrets, each awaiting random delays (microtasks and turns of the event loop) and checking its view
 * before and after every wait, some rejecting, with secrets closed (and replaced) in between while
 * accesses are pending. After every settlement and every close, `stats().inUse` must equal the
 * secrets not closed plus the closed ones that still have pending accesses: a secret is freed
 * exactly when its last access ends, never before.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` for bad options.
 */
export async function runAsyncInterleaving(factory: SecretFactory, config: InterleavingOptions = {}): Promise<InterleavingResult> {
  assertOptions(config, 'config');
  const rng = createRng(config.seed ?? 7);
  const total = config.accesses ?? 600;
  const width = config.secrets ?? 4;
  const baseline = factory.stats().inUse;
  // The first occurrence of each kind of problem, and how often it happened.
  const seen = new Map<string, { first: string; count: number }>();
  const problem = (kind: string, detail = ''): void => {
    const entry = seen.get(kind);
    if (entry === undefined) seen.set(kind, { first: detail, count: 1 });
    else entry.count += 1;
  };
  interface Tracked {
    secret: Secret;
    bytes: Buffer;
    pending: number;
    closed: boolean;
  }
  const tracked: Tracked[] = [];
  let made = 0;
  const make = (): Tracked => {
    made += 1;
    const bytes = patternBytes(made * 31 + (config.seed ?? 7), 1 + Math.floor(rng() * 200));
    return { secret: factory.new(Buffer.from(bytes)), bytes, pending: 0, closed: false };
  };
  const slots: Tracked[] = [];
  for (let i = 0; i < width; i += 1) {
    const t = make();
    slots.push(t);
    tracked.push(t);
  }
  const expectedLive = (): number => tracked.filter((t) => !t.closed || t.pending > 0).length;
  const checkLive = (when: string): void => {
    const inUse = factory.stats().inUse - baseline;
    if (inUse !== expectedLive()) problem('stats().inUse differs from the secrets not yet freed', `${when}: ${inUse}, expected ${expectedLive()}`);
  };

  let pendingNow = 0;
  let maxPending = 0;
  let closes = 0;
  let refused = 0;
  const all: Promise<void>[] = [];
  for (let i = 0; i < total; i += 1) {
    const useClosed = rng() < 0.03 && tracked.some((t) => t.closed);
    const t = useClosed ? (tracked.filter((x) => x.closed)[0] as Tracked) : (slots[Math.floor(rng() * slots.length)] as Tracked);
    const rejects = rng() < 0.1;
    const waits = 1 + Math.floor(rng() * 3);
    const sentinel = new Error('sentinel');
    const token = {};
    const expectRefusal = t.closed;
    const childRng = createRng(Math.floor(rng() * 0x7fffffff));
    if (!expectRefusal) {
      t.pending += 1;
      pendingNow += 1;
      maxPending = Math.max(maxPending, pendingNow);
    }
    all.push(
      t.secret
        .withBytesAsync(async (view) => {
          for (let w = 0; w < waits; w += 1) {
            if (!same(view, t.bytes)) problem('an access saw wrong bytes', `access ${i}, before wait ${w}`);
            await delay(childRng);
          }
          if (!same(view, t.bytes)) problem('an access saw wrong bytes', `access ${i}, at its end`);
          if (rejects) throw sentinel;
          return token;
        })
        .then(
          (value) => {
            if (expectRefusal) problem('an access on a closed secret resolved', `access ${i}`);
            else if (rejects || value !== token) problem('an access resolved wrongly', `access ${i}`);
          },
          (error: unknown) => {
            if (expectRefusal) {
              if ((error as { code?: unknown }).code === 'ERR_SECRET_CLOSED') refused += 1;
              else problem('an access on a closed secret failed with another error', `access ${i}: ${String((error as { code?: unknown }).code ?? error)}`);
            } else if (!rejects || error !== sentinel) problem('an access rejected wrongly', `access ${i}: ${String((error as { code?: unknown }).code ?? error)}`);
          },
        )
        .finally(() => {
          if (!expectRefusal) {
            t.pending -= 1;
            pendingNow -= 1;
          }
          checkLive(`after access ${i} settled`);
        }),
    );
    // Close (and replace) a secret now and then, often while accesses on it are pending.
    if (rng() < 0.04) {
      const at = Math.floor(rng() * slots.length);
      const victim = slots[at] as Tracked;
      victim.secret.close();
      victim.closed = true;
      closes += 1;
      if (!victim.secret.closed) problem('closed is false after close()');
      const fresh = make();
      slots[at] = fresh;
      tracked.push(fresh);
      checkLive(`after close ${closes}`);
    }
    if (rng() < 0.02) await delay(rng);
  }
  await Promise.all(all);
  checkLive('after every access settled');
  for (const t of slots) {
    t.secret.close();
    t.closed = true;
  }
  checkLive('after the last closes');
  if (factory.stats().inUse !== baseline) problem('secrets still in use at the end');
  for (const t of tracked) t.bytes.fill(0);
  const problems = [...seen].map(([kind, { first, count }]) => `${kind}${first === '' ? '' : ` (first: ${first})`}${count > 1 ? `, ${count} times` : ''}`);
  return { ok: problems.length === 0, accesses: total, maxPending, closes, refused, problems };
}

const same = (view: Uint8Array, bytes: Uint8Array): boolean => view.byteLength === bytes.byteLength && Buffer.compare(view, bytes) === 0;
