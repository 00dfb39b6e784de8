/**
 * A mixed workload over many live secrets: the same deterministic mix of operations runs in each
 * worker thread of the concurrency check and in the `secure-memory soak` child. It verifies the
 * bytes it reads against its own copies and counts every call it makes.
 * @module
 */
import { createHash } from 'node:crypto';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { patternBytes } from './pattern.js';

/** Options of {@link runWorkload}. */
export interface WorkloadOptions {
  /** Calls of the contract's methods to make (at least; an async batch may overshoot by a few). */
  operations: number;
  /** Secrets kept live throughout (each replaced when closed). */
  liveSecrets: number;
  /** Seeds the choices and the bytes given to `new`. */
  seed: number;
  /** Largest ordinary secret (default 256); one in 64 is 4 KiB to 12 KiB. */
  maxSize?: number;
  /** A readable descriptor with endless bytes (such as /dev/urandom) for `fromFd`; without it `fromFd` is not used. */
  fd?: number;
  /** Called every `progressEvery` operations with the count done. */
  onProgress?: (done: number) => void;
  progressEvery?: number;
  /** Close every secret at the end (default true). */
  closeAtEnd?: boolean;
}

/** What {@link runWorkload} did and found. */
export interface WorkloadResult {
  operations: number;
  byKind: Record<string, number>;
  /** Secrets made (including the initial live set). */
  secretsMade: number;
  /** Reads that did not match the copy kept, and other broken expectations; 0 when all is well. */
  mismatches: number;
  /** The first of them, described (never with the bytes). */
  firstMismatch?: string;
  /** The live secrets made by `new`, in slot order, with the seed and size of their bytes. */
  survivors: { seed: number; size: number }[];
  /** SHA-256 over the survivors' bytes, read through `withBytes` at the end. */
  digest: string;
}

/** A small deterministic generator (mulberry32). */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** SHA-256 over byte strings made from seeds: what {@link WorkloadResult.digest} must be. */
export function expectedDigest(survivors: readonly { seed: number; size: number }[]): string {
  const hash = createHash('sha256');
  for (const s of survivors) hash.update(patternBytes(s.seed, s.size));
  return hash.digest('hex');
}

interface Slot {
  secret: Secret;
  bytes: Buffer;
  /** The pattern seed for secrets made by `new`, or null. */
  seed: number | null;
}

const same = (view: Uint8Array, bytes: Uint8Array): boolean => view.byteLength === bytes.byteLength && Buffer.compare(view, bytes) === 0;

/**
 * Runs a deterministic mix of every operation of the contract over `liveSecrets` live secrets:
 * reads (plain, nested across two secrets, throwing), batches of overlapping async accesses (some
 * rejecting, some with a secret closed and replaced while they are pending), chunked reader reads,
 * `equals` with bytes, a changed copy and another secret, close inside an action, and replacement
 * of secrets through `new`, `createRandom` and `fromFd`. Never touches a view outside its action.
 * @throws {Error} what the backend throws where no error is expected (such as `ERR_MEMLOCK_LIMIT`).
 */
export async function runWorkload(factory: SecretFactory, options: WorkloadOptions): Promise<WorkloadResult> {
  const rng = createRng(options.seed);
  const int = (n: number): number => Math.floor(rng() * n);
  const maxSize = options.maxSize ?? 256;
  const every = options.progressEvery ?? 0;
  let operations = 0;
  // Progress reports start once the live set is in place.
  let nextProgress = Number.POSITIVE_INFINITY;
  const byKind: Record<string, number> = {};
  let secretsMade = 0;
  let mismatches = 0;
  let firstMismatch: string | undefined;
  let seedCounter = (options.seed * 7919) >>> 0;

  const count = (kind: string, n = 1): void => {
    operations += n;
    byKind[kind] = (byKind[kind] ?? 0) + n;
    if (operations >= nextProgress) {
      options.onProgress?.(operations);
      while (nextProgress <= operations) nextProgress += every;
    }
  };
  const wrong = (what: string): void => {
    mismatches += 1;
    firstMismatch ??= what;
  };
  const size = (): number => (int(64) === 0 ? 4096 + int(8192) : 1 + int(maxSize));

  const make = (): Slot => {
    secretsMade += 1;
    const choice = int(options.fd === undefined ? 2 : 3);
    const n = size();
    if (choice === 0) {
      seedCounter = (seedCounter + 1) >>> 0;
      const bytes = patternBytes(seedCounter, n);
      const secret = factory.new(Buffer.from(bytes));
      count('new');
      return { secret, bytes, seed: seedCounter };
    }
    const secret = choice === 1 ? factory.createRandom(n) : (factory.fromFd as (fd: number, size: number) => Secret).call(factory, options.fd as number, n);
    const bytes = secret.withBytes((view) => Buffer.from(view));
    count(choice === 1 ? 'createRandom' : 'fromFd');
    count('withBytes');
    return { secret, bytes, seed: null };
  };

  const slots: Slot[] = [];
  for (let i = 0; i < options.liveSecrets; i += 1) slots.push(make());
  if (every > 0) nextProgress = (Math.floor(operations / every) + 1) * every;
  const replace = (index: number): void => {
    const slot = slots[index] as Slot;
    if (!slot.secret.closed) slot.secret.close();
    slots[index] = make();
    count('close');
  };
  const pickSlot = (): number => int(slots.length);

  while (operations < options.operations) {
    const roll = int(100);
    const index = pickSlot();
    const slot = slots[index] as Slot;
    if (roll < 30) {
      count('withBytes');
      if (!slot.secret.withBytes((view) => same(view, slot.bytes))) wrong(`withBytes: slot ${index} does not hold its bytes`);
    } else if (roll < 38) {
      const other = slots[pickSlot()] as Slot;
      count('withBytes', 3);
      const ok = slot.secret.withBytes((a) => slot.secret.withBytes((b) => other.secret.withBytes((c) => same(a, slot.bytes) && same(b, slot.bytes) && same(c, other.bytes))));
      if (!ok) wrong('nested withBytes saw wrong bytes');
    } else if (roll < 41) {
      const sentinel = new Error('sentinel');
      count('withBytes');
      try {
        slot.secret.withBytes(() => {
          throw sentinel;
        });
        wrong('a throwing action did not throw');
      } catch (error) {
        if (error !== sentinel) wrong('a throwing action threw something else');
      }
    } else if (roll < 51) {
      // A batch of overlapping async accesses; sometimes a secret is closed and replaced while they are pending.
      const batch = 1 + int(8);
      const closeOne = int(4) === 0 ? int(batch) : -1;
      const started: Promise<void>[] = [];
      for (let k = 0; k < batch; k += 1) {
        const at = k === 0 ? index : pickSlot();
        const s = slots[at] as Slot;
        const rejects = int(8) === 0;
        const sentinel = new Error('sentinel');
        count('withBytesAsync');
        started.push(
          s.secret
            .withBytesAsync(async (view) => {
              const before = same(view, s.bytes);
              await (k % 2 === 0 ? Promise.resolve() : new Promise<void>((resolve) => setImmediate(resolve)));
              if (!before || !same(view, s.bytes)) wrong('an async access saw wrong bytes');
              if (rejects) throw sentinel;
            })
            .then(
              () => {
                if (rejects) wrong('a rejecting async action resolved');
              },
              (error: unknown) => {
                if (error !== sentinel) wrong(`an async access failed: ${(error as { code?: string }).code ?? String(error)}`);
              },
            ),
        );
        if (k === closeOne) replace(at);
      }
      await Promise.all(started);
    } else if (roll < 59) {
      count('reader');
      const reader = slot.secret.reader();
      const out = Buffer.alloc(slot.bytes.byteLength);
      const chunk = 1 + int(Math.max(1, slot.bytes.byteLength));
      let got = 0;
      for (let n = 1; n > 0; ) {
        count('read');
        n = reader.read(out.subarray(got, Math.min(out.byteLength, got + chunk)));
        got += n;
        if (got === out.byteLength) {
          count('read');
          if (reader.read(new Uint8Array(4)) !== 0) wrong('read past the end did not return 0');
          break;
        }
      }
      if (!out.equals(slot.bytes)) wrong(`reader: slot ${index} read wrong bytes`);
      out.fill(0);
    } else if (roll < 69) {
      const kind = int(3);
      count('equals');
      if (kind === 0) {
        if (!slot.secret.equals(slot.bytes)) wrong('equals(its own bytes) is false');
      } else if (kind === 1) {
        const changed = Buffer.from(slot.bytes);
        const at = int(changed.byteLength);
        changed[at] = (changed[at] as number) ^ (1 << int(8));
        if (slot.secret.equals(changed)) wrong('equals(a changed copy) is true');
      } else {
        const other = slots[pickSlot()] as Slot;
        if (slot.secret.equals(other.secret) !== slot.bytes.equals(other.bytes)) wrong('equals(another secret) is wrong');
      }
    } else if (roll < 72) {
      // Close inside an action, then replace.
      slot.secret.withBytes((view) => {
        slot.secret.close();
        if (!same(view, slot.bytes)) wrong('the view changed when the secret was closed inside its action');
      });
      slots[index] = make();
      count('withBytes');
      count('close');
    } else {
      replace(index);
    }
  }

  // Progress reports stop here: they describe the run with its live set in place.
  nextProgress = Number.POSITIVE_INFINITY;
  const hash = createHash('sha256');
  const survivors: { seed: number; size: number }[] = [];
  for (const slot of slots) {
    if (slot.seed === null) continue;
    survivors.push({ seed: slot.seed, size: slot.bytes.byteLength });
    count('withBytes');
    slot.secret.withBytes((view) => hash.update(view));
  }
  const digest = hash.digest('hex');
  if (options.closeAtEnd !== false) {
    for (const slot of slots) {
      count('close');
      slot.secret.close();
    }
  }
  for (const slot of slots) slot.bytes.fill(0);
  return { operations, byKind, secretsMade, mismatches, ...(firstMismatch === undefined ? {} : { firstMismatch }), survivors, digest };
}
