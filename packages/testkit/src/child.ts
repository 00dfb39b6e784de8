/**
 * The child side of the out-of-process probes. It builds a factory from a module specifier,
 * makes secrets, and hands their plaintext to the parent over file descriptor 3 (a pipe), straight
 * from the protected view, never through a JS string or a heap copy. It reports events as JSON
 * lines on stdout and takes commands on stdin. Run as `node child.js '<config JSON>'`.
 * @module
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ErrorCode, ManagedSecret, REGION_PROBE, type RegionLocation, type Secret, type SecretFactory, SecureMemoryTypeError } from '@secure-memory/core';
import { runContract } from './contract.js';
import { loadTarget } from './load.js';
import { sendError, sendEvent as send } from './events.js';
import { type ChildConfig, HELD, WORKER_HELD } from './protocol.js';
import type { KeyKind, KeyUseWorkload } from './key-use-workload.js';

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done);
}

function locate(secret: Secret): RegionLocation | undefined {
  const probe = (secret as unknown as Record<symbol, unknown>)[REGION_PROBE];
  return typeof probe === 'function' ? (probe.call(secret) as RegionLocation | undefined) : undefined;
}

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

/** Writes one frame of plaintext to the parent (see `parseFrames`), straight from `view`. */
function writeFrame(label: string, view: Uint8Array): void {
  const header = Buffer.alloc(1 + label.length + 4);
  header[0] = label.length;
  header.write(label, 1, 'latin1');
  header.writeUInt32LE(view.byteLength, 1 + label.length);
  writeAll(3, header);
  writeAll(3, view);
}

/**
 * A source of `size` random bytes of the given kind, filled from JavaScript one element at a time
 * from an off-heap buffer that is then wiped: nothing reads the source's `.buffer`, so a small one
 * stays inside its V8 heap object, as in real use.
 */
function source(kind: 'off-heap' | 'uint8array' | 'alloc' | 'pool', size: number): Uint8Array {
  const random = new Uint8Array(new ArrayBuffer(size));
  randomFillSync(random);
  if (kind === 'off-heap') return random;
  const target = kind === 'uint8array' ? new Uint8Array(size) : kind === 'alloc' ? Buffer.alloc(size) : Buffer.allocUnsafe(size);
  // Promoted to the old generation before it is filled: a scavenge between the fill and the wipe
  // would leave the collector's own copy of a young source, which no backend can prevent (the
  // README's "What JavaScript cannot promise"); the probe judges what the backend does.
  collectGarbage();
  for (let i = 0; i < size; i += 1) target[i] = random[i] as number;
  random.fill(0);
  return target;
}

function makeHeld(factory: SecretFactory, label: string, size: number): Secret {
  if (label.includes('createRandom')) return factory.createRandom(size);
  const kind = label.includes('off-heap') ? 'off-heap' : label.includes('Uint8Array') ? 'uint8array' : label.includes('alloc') ? 'alloc' : 'pool';
  return factory.new(source(kind, size));
}

/** The worker thread of a holder: makes its own secrets, hands over their plaintext, and waits to be terminated. */
async function workerHold(config: ChildConfig): Promise<void> {
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
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: config, argv: [] });
  const message = await new Promise<{ ok: boolean; error?: string }>((resolve) => {
    worker.once('message', resolve);
    worker.once('error', (error) => resolve({ ok: false, error: `the worker threw: ${error.message}` }));
    worker.once('exit', (code) => resolve({ ok: false, error: `the worker exited with code ${code}` }));
  });
  if (message.ok) return { worker, error: null };
  await worker.terminate();
  return { worker: undefined, error: message.error ?? 'the worker failed' };
}

function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the holder needs --expose-gc');
  gc();
  gc();
}

async function hold(factory: SecretFactory, config: ChildConfig): Promise<void> {
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

/**
 * A view kept past close() must never read another secret: the secret is closed, then new ones
 * (which a pooling allocator places where it was) are read while the kept view is compared with them.
 */
function keepAfterClose(factory: SecretFactory): void {
  const first = factory.createRandom(32);
  let kept: Uint8Array = new Uint8Array(0);
  first.withBytes((view) => {
    kept = view;
  });
  first.close();
  send({ event: 'kept', byteLength: kept.byteLength });
  let readOther = false;
  let tries = 0;
  for (let i = 0; i < 16 && !readOther; i += 1) {
    const other = i % 2 === 0 ? factory.createRandom(32) : factory.new(source('off-heap', 32));
    other.withBytes((view) => {
      tries += 1;
      if (kept.byteLength !== view.byteLength) return;
      let same = true;
      for (let j = 0; j < view.byteLength; j += 1) if (kept[j] !== view[j]) same = false;
      readOther = same;
    });
    other.close();
  }
  send({ event: 'result', readOther, tries });
}

/** A view moved out of its access with ArrayBuffer.prototype.transfer() (Node 22+) must not outlive the access. */
function transfer(factory: SecretFactory): void {
  if (typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer !== 'function') {
    send({ event: 'unsupported', node: process.version });
    return;
  }
  const secret = factory.createRandom(32);
  let moved: ArrayBuffer | undefined;
  let digest = '';
  let own: Buffer | undefined;
  try {
    secret.withBytes((view) => {
      digest = createHash('sha256').update(view).digest('hex');
      // A copy kept to look for the secret inside a larger moved buffer (a slab); this child is not scanned.
      own = Buffer.from(view);
      try {
        moved = (view.buffer as ArrayBuffer & { transfer(): ArrayBuffer }).transfer();
        send({ event: 'transferred', byteLength: moved.byteLength });
      } catch (error) {
        send({ event: 'refused', name: (error as Error).name, code: (error as { code?: unknown }).code ?? null });
      }
    });
  } catch (error) {
    // The library noticed the transfer when the access ended: a loud failure, as it should be.
    send({ event: 'access-error', code: (error as { code?: unknown }).code ?? null });
  }
  send({ event: 'access-ended' });
  if (moved !== undefined) {
    const view = new Uint8Array(moved);
    const readable = view.byteLength > 0;
    const whole = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
    const found = (readable && createHash('sha256').update(view).digest('hex') === digest) || (own !== undefined && whole.indexOf(own) !== -1);
    send({ event: 'read', byteLength: view.byteLength, secret: found, zeros: readable && view.every((b) => b === 0) });
  }
  try {
    secret.close();
    send({ event: 'closed' });
  } catch (error) {
    send({ event: 'close-error', code: (error as { code?: unknown }).code ?? null });
  }
}

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

function keepView(factory: SecretFactory): void {
  const secret = factory.createRandom(32);
  let kept: Uint8Array = new Uint8Array(0);
  secret.withBytes((view) => {
    kept = view;
  });
  send({ event: 'kept', byteLength: kept.byteLength });
  if (kept.byteLength === 0) return;
  let mix = 0;
  for (let i = 0; i < kept.byteLength; i += 1) mix ^= kept[i] as number;
  send({ event: 'read', impossible: mix === 256 });
}

async function touch(factory: SecretFactory, mode: 'guard-after' | 'guard-before' | 'canary'): Promise<void> {
  const native = await import('./native.js');
  const secret = factory.createRandom(32);
  const location = locate(secret);
  if (location === undefined) {
    send({ event: 'no-region' });
    return;
  }
  if (mode === 'canary') {
    const target = location.address - 1n;
    const written = secret.withBytes(() => {
      const errno = native.protectPage(target, native.PROT_READ | native.PROT_WRITE);
      if (errno !== 0) return `mprotect failed with errno ${errno}`;
      native.poke(target, native.peek(target) ^ 0xff);
      return undefined;
    });
    if (written !== undefined) {
      send({ event: 'cannot-write', reason: written });
      return;
    }
    send({ event: 'written' });
    try {
      secret.close();
      send({ event: 'closed-clean' });
    } catch (error) {
      send({ event: 'close-error', code: (error as { code?: unknown }).code ?? null });
    }
    return;
  }
  const target =
    mode === 'guard-after'
      ? location.address + BigInt(location.size)
      : location.address - (location.address % native.pageSize) - 1n;
  secret.withBytes(() => {
    send({ event: 'touching', address: target });
    native.peek(target);
  });
  send({ event: 'survived' });
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
