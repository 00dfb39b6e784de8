/**
 * The fuzz's model and the system under test (see `fuzz.ts`): what the backend must show (the bytes
 * of each secret, its closed flag, its pending accesses, the secrets made), the real factory and
 * secrets beside it, the checks run after every command, and the base class of the commands.
 * @module
 */
import assert from 'node:assert/strict';
import type * as fc from 'fast-check';
import type { Secret, SecretFactory } from '@secure-memory/core';

/** The most secrets (open or closed) one run makes. */
export const MAX_SECRETS = 24;
/** The most async accesses one run holds pending at once. */
export const MAX_PENDING = 8;

export interface ModelSecret {
  readonly size: number;
  /** The bytes the secret must hold. */
  readonly bytes: Buffer;
  closed: boolean;
  /** Async accesses started and not yet settled. */
  pending: number;
}

export interface ModelPending {
  /** The index of the secret in `secrets`. */
  readonly secret: number;
  readonly rejects: boolean;
  /** The action closes its own secret when it is released. */
  readonly closes: boolean;
}

/** The model: what the backend must show. */
export interface FuzzModel {
  readonly secrets: ModelSecret[];
  readonly pending: ModelPending[];
  allocated: number;
  readonly hasFromFd: boolean;
}

export interface Settled {
  ok: boolean;
  value?: unknown;
  error?: unknown;
}

export interface RealPending {
  release(): void;
  readonly settled: Promise<Settled>;
  readonly seen: { before?: boolean; after?: boolean; closedInside?: boolean };
  readonly token: object;
}

/** The system under test. */
export interface FuzzReal {
  readonly factory: SecretFactory;
  readonly secrets: Secret[];
  readonly pending: RealPending[];
  readonly dir: string;
  readonly tally: Tally;
}

/** What the fuzz counts. */
export interface Tally {
  operations: number;
  commands: number;
  counting: boolean;
  byName: Record<string, number>;
}

export type FuzzCommand = fc.AsyncCommand<FuzzModel, FuzzReal>;

export function matches(view: Uint8Array, expected: Uint8Array): boolean {
  return view.byteLength === expected.byteLength && Buffer.compare(view, expected) === 0;
}

export function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** Asserts that `fn` throws synchronously with one of `codes`. */
export function throwsCode(fn: () => unknown, codes: readonly string[], what: string): void {
  let result: unknown;
  try {
    result = fn();
  } catch (error) {
    assert.ok(codes.includes(codeOf(error) as string), `${what}: expected ${codes.join(' or ')}, got ${String(codeOf(error) ?? error)}`);
    return;
  }
  if (result instanceof Promise) result.catch(() => {});
  assert.fail(`${what}: expected ${codes.join(' or ')}, but it returned`);
}

export const pick = <T>(list: readonly T[], slot: number): T => list[slot % list.length] as T;
export const openIndexes = (m: FuzzModel): number[] => m.secrets.flatMap((s, i) => (s.closed ? [] : [i]));
export const liveCount = (m: FuzzModel): number => m.secrets.filter((s) => !s.closed || s.pending > 0).length;

export function op(r: FuzzReal, n = 1): void {
  if (r.tally.counting) r.tally.operations += n;
}

/** Checks every secret and the counters against the model. */
function verify(m: FuzzModel, r: FuzzReal): void {
  m.secrets.forEach((s, i) => {
    const secret = r.secrets[i] as Secret;
    assert.equal(secret.closed, s.closed, `secret #${i}: closed is ${secret.closed}, the model says ${s.closed}`);
    assert.equal(secret.size, s.size, `secret #${i}: size`);
    if (!s.closed) {
      op(r);
      assert.ok(secret.withBytes((view) => matches(view, s.bytes)), `secret #${i} does not hold the bytes of the model`);
    }
  });
  op(r);
  const stats = r.factory.stats();
  assert.equal(stats.inUse, liveCount(m), 'stats().inUse differs from the live secrets of the model');
  assert.equal(stats.allocated, m.allocated, 'stats().allocated differs from the secrets made');
}

/** The base of every command: counts it and checks everything after it ran. */
export abstract class Command implements FuzzCommand {
  abstract readonly name: string;
  check(m: Readonly<FuzzModel>): boolean {
    return m.secrets.length > 0;
  }
  protected abstract exec(m: FuzzModel, r: FuzzReal): void | Promise<void>;
  async run(m: FuzzModel, r: FuzzReal): Promise<void> {
    if (r.tally.counting) {
      r.tally.commands += 1;
      r.tally.byName[this.name] = (r.tally.byName[this.name] ?? 0) + 1;
    }
    await this.exec(m, r);
    verify(m, r);
  }
  abstract toString(): string;
}

/** A command aimed at one secret: `slot` modulo the secrets made so far. */
export abstract class SlotCommand extends Command {
  constructor(readonly slot: number) {
    super();
  }
  /** The secret aimed at, in the model and in the real system. */
  protected aim(m: FuzzModel, r: FuzzReal): { index: number; s: ModelSecret; secret: Secret } {
    const index = this.slot % m.secrets.length;
    return { index, s: m.secrets[index] as ModelSecret, secret: r.secrets[index] as Secret };
  }
}

export function add(m: FuzzModel, r: FuzzReal, secret: Secret, bytes: Buffer): void {
  m.secrets.push({ size: bytes.byteLength, bytes, closed: false, pending: 0 });
  m.allocated += 1;
  r.secrets.push(secret);
}
