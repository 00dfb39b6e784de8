/**
 * The child side of the out-of-process probes. It builds a factory from a module specifier,
 * makes secrets, and hands their plaintext to the parent over file descriptor 3 (a pipe), straight
 * from the protected view, never through a JS string or a heap copy. It reports events as JSON
 * lines on stdout and takes commands on stdin. Run as `node child.js '<config JSON>'`.
 *
 * This file is the entry: it runs the mode its config names, and itself runs the contract, the
 * reliability checks and the key-use workload; the holder (and its worker thread) is in
 * `child-hold.ts`, the fault probes in `child-faults.ts`, what they share in `child-io.ts`.
 * @module
 */
import { createInterface } from 'node:readline';
import { isMainThread, workerData } from 'node:worker_threads';
import { ErrorCode, type Secret, type SecretFactory, SecureMemoryTypeError } from '@secure-memory/core';
import { collectGarbage, writeFrame } from './child-io.js';
import { keepAfterClose, keepView, touch, transfer } from './child-faults.js';
import { hold, workerHold } from './child-hold.js';
import { runContract } from './contract.js';
import { sendError, sendEvent as send } from './events.js';
import { loadTarget } from './load.js';
import type { ChildConfig } from './protocol.js';
import type { KeyKind, KeyUseWorkload } from './key-use-workload.js';

/** The fuzz, the worker-thread check and the async interleaving, as `describeConformance` runs them. */
async function reliability(factory: SecretFactory, config: ChildConfig): Promise<void> {
  const { runFuzz, CONFORMANCE_FUZZ_RUNS, CONFORMANCE_FUZZ_SEED } = await import('./fuzz.js');
  const { runAsyncInterleaving, runWorkers } = await import('./concurrency.js');
  const base = { module: config.module, ...(config.options === undefined ? {} : { options: config.options }) };
  const fuzz = await runFuzz({ ...base, seed: CONFORMANCE_FUZZ_SEED, numRuns: CONFORMANCE_FUZZ_RUNS });
  send({
    event: 'fuzz',
    ok: fuzz.ok,
    detail: fuzz.ok ? `seed ${fuzz.seed}, ${fuzz.numRuns} runs, ${fuzz.commandsRun} commands, ${fuzz.operations} operations` : (fuzz.failure?.text ?? 'the fuzz failed'),
  });
  const workers = await runWorkers({ ...base, workers: 4, operations: 3000, mainFactory: factory });
  const bad = workers.threads.filter((t) => !t.ok);
  // A backend may refuse worker threads with a typed error (and say so in its README): then the check does not apply.
  const refused = bad.length === workers.threads.length - 1 && bad.every((t) => t.thread !== 'main thread' && t.error?.startsWith('ERR_UNSUPPORTED_PLATFORM') === true);
  send({
    event: 'workers',
    ok: refused ? null : workers.ok,
    detail: refused ? `not run: the backend refuses worker threads (${bad[0]?.error ?? ''})` : workers.ok ? `${workers.threads.length} threads, ${workers.operations} operations` : bad.map((t) => `${t.thread}: ${t.error ?? `digest ${t.digestMatches ? 'ok' : 'wrong'}, ${t.mismatches} mismatch(es), inUse ${t.inUse}`}`).join('; '),
  });
  const interleaving = await runAsyncInterleaving(factory, { accesses: 600, secrets: 4, seed: 7 });
  // As describeConformance requires: at least 100 accesses pending at once, closes while pending, refusals.
  const ok = interleaving.ok && interleaving.maxPending >= 100 && interleaving.closes > 0 && interleaving.refused > 0;
  send({
    event: 'interleaving',
    ok,
    detail: interleaving.problems.length > 0 ? interleaving.problems.join('; ') : `${interleaving.accesses} accesses, up to ${interleaving.maxPending} pending, ${interleaving.closes} closes while pending, ${interleaving.refused} refused`,
  });
}

/**
 * The key-use probe's child: runs the workload on the factory, which reports its keys (written to
 * fd 3 straight from their views), collects garbage with the workload's survivors still held, says
 * `ready` with the labels of the keys, and holds still to be scanned until told to exit.
 */
async function keyUse(factory: SecretFactory, config: ChildConfig): Promise<void> {
  const { workload: specifier, records, sampleEvery } = config.keyUse ?? { workload: '', records: 0, sampleEvery: 1 };
  const workload = (await import(specifier)) as Partial<KeyUseWorkload>;
  if (typeof workload.run !== 'function') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `The key-use workload ${specifier} does not export a run() function`);
  }
  const missing = typeof workload.unavailable === 'function' ? await workload.unavailable() : undefined;
  const labels: string[] = [];
  let held: unknown;
  if (missing === undefined) {
    const counts = new Map<KeyKind, number>();
    const report = (kind: KeyKind, secret: Secret): void => {
      const n = counts.get(kind) ?? 0;
      counts.set(kind, n + 1);
      const label = `${kind}#${n}`;
      secret.withBytes((view) => {
        if (view.byteLength < 16) throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `The key-use workload reported a ${view.byteLength}-byte key: keys must be at least 16 bytes`);
        writeFrame(label, view);
      });
      labels.push(label);
    };
    held = await workload.run({ factory, records, sampleEvery, report });
    // Collections, with turns of the event loop between them so that finalizers run.
    for (let i = 0; i < 4; i += 1) {
      collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  send({ event: 'ready', pid: process.pid, name: factory.name, keys: labels, held: held === undefined ? 0 : 1, ...(missing === undefined ? {} : { unavailable: missing }) });
  for await (const line of createInterface({ input: process.stdin })) if (line === 'exit') break;
  (globalThis as { keyUseHeld?: unknown }).keyUseHeld = held;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const factory = await loadTarget(config.module, config.options);
  switch (config.mode) {
    case 'hold':
      return hold(factory, config);
    case 'keep-view':
      return keepView(factory);
    case 'keep-after-close':
      return keepAfterClose(factory);
    case 'transfer':
      return transfer(factory);
    case 'reliability':
      return reliability(factory, config);
    case 'guard-after':
    case 'guard-before':
    case 'canary':
      return touch(factory, config.mode);
    case 'key-use':
      return keyUse(factory, config);
    case 'contract':
      send({ event: 'contract', name: factory.name, guarantees: factory.guarantees, ...(await runContract(factory)) });
      return;
  }
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      sendError(error);
      process.exit(2);
    },
  );
} else {
  void workerHold(workerData as ChildConfig);
}

