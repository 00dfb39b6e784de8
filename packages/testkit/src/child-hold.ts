/**
 * The holder child (see `child.ts`): makes the secrets of `HELD` and hands their plaintext to the
 * parent, then holds them idle, opens them all on `access`, releases them on `release`, and on
 * `close` closes them, lets a worker thread make the secrets of `WORKER_HELD` and terminates it,
 * and collects garbage, so that the parent can scan it in each phase.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker, parentPort } from 'node:worker_threads';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { ManagedSecret } from '@secure-memory/core/backend';
import { collectGarbage, locate, source, writeFrame } from './child-io.js';
import { sendEvent as send } from './events.js';
import { loadTarget } from './load.js';
import { type ChildConfig, HELD, WORKER_HELD } from './protocol.js';

/** The child script, which is also the entry of the holder's worker thread. */
const CHILD_ENTRY = fileURLToPath(new URL('./child.js', import.meta.url));

/** The equals correctness table, on secrets that are not held (their bytes are not searched for). */
function equalsTable(factory: SecretFactory): { correct: boolean; sharedImplementation: boolean } {
  const bytes = randomBytes(32);
  const secret = factory.new(Buffer.from(bytes));
  const twin = factory.new(Buffer.from(bytes));
  const flipped = Buffer.from(bytes);
  flipped[31] = (flipped[31] as number) ^ 0x80;
  const correct =
    secret.equals(bytes) && secret.equals(twin) && !secret.equals(flipped) && !secret.equals(bytes.subarray(1));
  const sharedImplementation = secret.equals === ManagedSecret.prototype.equals;
  secret.close();
  twin.close();
  return { correct, sharedImplementation };
}

function makeHeld(factory: SecretFactory, label: string, size: number): Secret {
  if (label.includes('createRandom')) return factory.createRandom(size);
  const kind = label.includes('off-heap') ? 'off-heap' : label.includes('Uint8Array') ? 'uint8array' : label.includes('alloc') ? 'alloc' : 'pool';
  return factory.new(source(kind, size));
}

/** The worker thread of a holder: makes its own secrets, hands over their plaintext, and waits to be terminated. */
export async function workerHold(config: ChildConfig): Promise<void> {
  const port = parentPort as NonNullable<typeof parentPort>;
  try {
    const factory = await loadTarget(config.module, config.options);
    const secrets = WORKER_HELD.map((h) => makeHeld(factory, h.label, h.size));
    for (const [i, secret] of secrets.entries()) secret.withBytes((view) => writeFrame(WORKER_HELD[i]!.label, view));
    (globalThis as { held?: unknown }).held = secrets;
    port.postMessage({ ok: true });
    setInterval(() => {}, 1 << 30);
  } catch (error) {
    port.postMessage({ ok: false, error: `${String((error as { code?: unknown }).code ?? 'error')}: ${String((error as Error).message ?? error)}` });
  }
}

/** Starts the holder's worker thread; resolves when its secrets are made (or it failed). */
async function startWorker(config: ChildConfig): Promise<{ worker: Worker | undefined; error: string | null }> {
  const worker = new Worker(CHILD_ENTRY, { workerData: config, argv: [] });
  const message = await new Promise<{ ok: boolean; error?: string }>((resolve) => {
    worker.once('message', resolve);
    worker.once('error', (error) => resolve({ ok: false, error: `the worker threw: ${error.message}` }));
    worker.once('exit', (code) => resolve({ ok: false, error: `the worker exited with code ${code}` }));
  });
  if (message.ok) return { worker, error: null };
  await worker.terminate();
  return { worker: undefined, error: message.error ?? 'the worker failed' };
}

export async function hold(factory: SecretFactory, config: ChildConfig): Promise<void> {
  const secrets = HELD.map((h) => makeHeld(factory, h.label, h.size));
  for (const [i, secret] of secrets.entries()) secret.withBytes((view) => writeFrame(HELD[i]!.label, view));
  send({
    event: 'ready',
    pid: process.pid,
    name: factory.name,
    guarantees: factory.guarantees,
    regions: secrets.map((s) => locate(s) ?? null),
    equals: equalsTable(factory),
  });
  let release: (() => void) | undefined;
  let accesses: Promise<unknown>[] = [];
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'access') {
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      accesses = secrets.map((s) => s.withBytesAsync(() => gate));
      send({ event: 'accessing' });
    } else if (line === 'release') {
      release?.();
      await Promise.all(accesses);
      send({ event: 'released' });
    } else if (line === 'close') {
      for (const secret of secrets) secret.close();
      // A worker thread makes secrets and is terminated without closing them: they must go with it.
      const { worker, error: workerError } = await startWorker(config);
      if (worker !== undefined) await worker.terminate();
      collectGarbage();
      send({ event: 'closed', stats: factory.stats(), worker: workerError });
    } else if (line === 'exit') {
      break;
    }
  }
}

