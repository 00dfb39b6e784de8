/**
 * The child side of the out-of-process probes. It builds a factory from a module specifier,
 * makes secrets, and hands their plaintext to the parent over file descriptor 3 (a pipe), straight
 * from the protected view, never through a JS string or a heap copy. It reports events as JSON
 * lines on stdout and takes commands on stdin. Run as `node child.js '<config JSON>'`.
 * @module
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { closeSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ManagedSecret, REGION_PROBE, loadBackend, type RegionLocation, type Secret, type SecretFactory } from '@secure-memory/core';
import { runContract } from './contract.js';
import { type ChildConfig, HELD_SIZES } from './protocol.js';


function send(event: Record<string, unknown>): void {
  writeSync(1, `${JSON.stringify(event, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}\n`);
}

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

async function hold(factory: SecretFactory): Promise<void> {
  // An ArrayBuffer's backing store is off the V8 heap, so the garbage collector never copies it
  // (a small `new Uint8Array(n)` or Buffer.allocUnsafeSlow(n) lives on the heap and may be moved).
  const offHeapSource = new Uint8Array(new ArrayBuffer(HELD_SIZES[1]));
  randomFillSync(offHeapSource);
  const secrets = [factory.createRandom(HELD_SIZES[0]), factory.new(offHeapSource), factory.createRandom(HELD_SIZES[2])];
  for (const secret of secrets) secret.withBytes((view) => writeAll(3, view));
  closeSync(3);
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
      send({ event: 'closed', stats: factory.stats() });
    } else if (line === 'exit') {
      break;
    }
  }
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

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const factory = await loadBackend(config.module, config.options);
  switch (config.mode) {
    case 'hold':
      return hold(factory);
    case 'keep-view':
      return keepView(factory);
    case 'guard-after':
    case 'guard-before':
    case 'canary':
      return touch(factory, config.mode);
    case 'contract':
      send({ event: 'contract', ...(await runContract(factory)) });
      return;
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    send({ event: 'error', code: (error as { code?: unknown }).code ?? null, message: String((error as Error).message ?? error) });
    process.exit(2);
  },
);
