/**
 * Model-based fuzzing of the contract with fast-check's commands API: random sequences of `new`,
 * `createRandom`, `fromFd`, `withBytes` (plain, nested, throwing, closing, async), `withBytesAsync`
 * accesses held pending across later commands and released in any order (some rejecting),
 * `reader().read`, `equals` and `close` run against a simple in-memory model (the bytes of each
 * secret, its closed flag, its pending accesses). After every command every secret's bytes,
 * `closed` flag and size are checked against the model, and `stats()` against the model's counts
 * of live and allocated secrets. Views are touched only inside their actions.
 * @module
 */
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fc from 'fast-check';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { assertOptions } from '@secure-memory/core/backend';
import { loadTarget } from './load.js';

/** The seed `describeConformance` fuzzes every backend with. */
export const CONFORMANCE_FUZZ_SEED = 424242;
/** The runs of the fixed-seed fuzz in `describeConformance`. */
export const CONFORMANCE_FUZZ_RUNS = 300;

/** The most secrets (open or closed) one run makes. */
const MAX_SECRETS = 24;
/** The most async accesses one run holds pending at once. */
const MAX_PENDING = 8;
/** The longest command sequence of one run. */
const DEFAULT_MAX_COMMANDS = 60;

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  /** A module specifier of a backend (what `loadBackend` takes). */
  module: string;
  /** Passed to the module's `createFactory(options)`; each run builds a fresh factory. */
  options?: Record<string, unknown>;
  /** The fast-check seed; random when omitted (it is returned either way). */
  seed?: number;
  /** Command sequences to run (default 100). */
  numRuns?: number;
  /** The longest sequence (default 60). */
  maxCommands?: number;
  /** With `seed`: replay the failing run at this fast-check path (and shrink no further). */
  path?: string;
  /** With `path`: which commands of the replayed sequences ran (from the failure's `replayPath`). */
  replayPath?: string;
  /** Called after each run that passed: `(runsDone, numRuns)`. */
  progress?: (runsDone: number, numRuns: number) => void;
}

/** A failure, with what is needed to replay it. */
export interface FuzzFailure {
  seed: number;
  /** fast-check's path to the shrunk counterexample (`{ seed, path }` replays it). */
  path: string;
  /** Which commands ran, for replaying a shrunk path (`replayPath` option). */
  replayPath: string | null;
  /** The shrunk command sequence, one command a line. */
  counterexample: string;
  /** The error the shrunk sequence ended with. */
  error: string;
  /** A readable report: seed, path, the sequence and the error. */
  text: string;
}

/** The result of {@link runFuzz}. */
export interface FuzzResult {
  ok: boolean;
  seed: number;
  /** Runs done (up to and including the first failing one). */
  numRuns: number;
  /** Commands run before the first failure (shrinking not counted). */
  commandsRun: number;
  /** Calls of the contract's methods those commands and the checks after them made. */
  operations: number;
  /** Commands run, by name. */
  commandCounts: Record<string, number>;
  failure?: FuzzFailure;
}

// ---------------------------------------------------------------------------------------------
// The model and the real system

interface ModelSecret {
  readonly size: number;
  /** The bytes the secret must hold. */
  readonly bytes: Buffer;
  closed: boolean;
  /** Async accesses started and not yet settled. */
  pending: number;
}

interface ModelPending {
  /** The index of the secret in `secrets`. */
  readonly secret: number;
  readonly rejects: boolean;
  /** The action closes its own secret when it is released. */
  readonly closes: boolean;
}

/** The model: what the backend must show. */
interface FuzzModel {
  readonly secrets: ModelSecret[];
  readonly pending: ModelPending[];
  allocated: number;
  readonly hasFromFd: boolean;
}

interface Settled {
  ok: boolean;
  value?: unknown;
  error?: unknown;
}

interface RealPending {
  release(): void;
  readonly settled: Promise<Settled>;
  readonly seen: { before?: boolean; after?: boolean; closedInside?: boolean };
  readonly token: object;
}

/** The system under test. */
interface FuzzReal {
  readonly factory: SecretFactory;
  readonly secrets: Secret[];
  readonly pending: RealPending[];
  readonly dir: string;
  readonly tally: Tally;
}

/** What the fuzz counts. */
interface Tally {
  operations: number;
  commands: number;
  counting: boolean;
  byName: Record<string, number>;
}

type FuzzCommand = fc.AsyncCommand<FuzzModel, FuzzReal>;

/** Bytes from a seed (xorshift32): the same seed and size always give the same bytes. */
export function patternBytes(seed: number, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = (seed ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < size; i += 1) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function matches(view: Uint8Array, expected: Uint8Array): boolean {
  return view.byteLength === expected.byteLength && Buffer.compare(view, expected) === 0;
}

function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/** Asserts that `fn` throws synchronously with one of `codes`. */
function throwsCode(fn: () => unknown, codes: readonly string[], what: string): void {
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

const pick = <T>(list: readonly T[], slot: number): T => list[slot % list.length] as T;
const openIndexes = (m: FuzzModel): number[] => m.secrets.flatMap((s, i) => (s.closed ? [] : [i]));
const liveCount = (m: FuzzModel): number => m.secrets.filter((s) => !s.closed || s.pending > 0).length;

function op(r: FuzzReal, n = 1): void {
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
abstract class Command implements FuzzCommand {
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

function add(m: FuzzModel, r: FuzzReal, secret: Secret, bytes: Buffer): void {
  m.secrets.push({ size: bytes.byteLength, bytes, closed: false, pending: 0 });
  m.allocated += 1;
  r.secrets.push(secret);
}

class NewCommand extends Command {
  readonly name = 'new';
  constructor(
    readonly size: number,
    readonly fill: number,
    readonly offset: number,
    /** Copy the bytes of an open secret (so that `equals` between secrets can be true). */
    readonly twinOf: number | null,
  ) {
    super();
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.secrets.length < MAX_SECRETS;
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const open = openIndexes(m);
    const expected =
      this.twinOf !== null && open.length > 0 ? Buffer.from((m.secrets[pick(open, this.twinOf)] as ModelSecret).bytes) : patternBytes(this.fill, this.size);
    const whole = Buffer.alloc(this.offset + expected.byteLength + 3, 0xa5);
    whole.set(expected, this.offset);
    const source = whole.subarray(this.offset, this.offset + expected.byteLength);
    op(r);
    const secret = r.factory.new(source);
    add(m, r, secret, expected);
    assert.ok(source.every((b) => b === 0), 'new() did not zero-fill its source');
    assert.ok(
      whole.subarray(0, this.offset).every((b) => b === 0xa5) && whole.subarray(this.offset + expected.byteLength).every((b) => b === 0xa5),
      'new() wrote outside its source view',
    );
  }
  toString(): string {
    return this.twinOf !== null ? `new(twin of open[${this.twinOf}])` : `new(${this.size} bytes, fill ${this.fill}, at ${this.offset})`;
  }
}

class CreateRandomCommand extends Command {
  readonly name = 'createRandom';
  constructor(readonly size: number) {
    super();
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.secrets.length < MAX_SECRETS;
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    op(r, 2);
    const secret = r.factory.createRandom(this.size);
    const bytes = secret.withBytes((view) => Buffer.from(view));
    add(m, r, secret, bytes);
    assert.equal(bytes.byteLength, this.size, 'createRandom() gave the wrong size');
    if (this.size >= 16) assert.ok(bytes.some((b) => b !== 0), 'createRandom() gave only zeros');
  }
  toString(): string {
    return `createRandom(${this.size})`;
  }
}

class FromFdCommand extends Command {
  readonly name = 'fromFd';
  constructor(
    readonly size: number,
    readonly fill: number,
    /** Offer one byte too few: the read must fail with ERR_INVALID_SIZE and keep nothing. */
    readonly short: boolean,
  ) {
    super();
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.hasFromFd && m.secrets.length < MAX_SECRETS;
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const bytes = patternBytes(this.fill, this.size);
    const path = join(r.dir, 'fd');
    writeFileSync(path, this.short ? bytes.subarray(0, this.size - 1) : bytes);
    const fd = openSync(path, 'r');
    try {
      const fromFd = (r.factory.fromFd as (fd: number, size: number) => Secret).bind(r.factory);
      op(r);
      if (this.short) {
        throwsCode(() => fromFd(fd, this.size), ['ERR_INVALID_SIZE'], 'fromFd() on a short descriptor');
      } else {
        add(m, r, fromFd(fd, this.size), bytes);
      }
    } finally {
      closeSync(fd);
    }
  }
  toString(): string {
    return `fromFd(${this.size} bytes, fill ${this.fill}${this.short ? ', one byte short' : ''})`;
  }
}

type WithBytesKind = 'plain' | 'nested' | 'throw' | 'close-inside' | 'async-action';

class WithBytesCommand extends Command {
  readonly name = 'withBytes';
  constructor(
    readonly slot: number,
    readonly kind: WithBytesKind,
    readonly other: number,
  ) {
    super();
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const index = this.slot % m.secrets.length;
    const s = m.secrets[index] as ModelSecret;
    const secret = r.secrets[index] as Secret;
    if (this.kind === 'async-action') {
      // Which of the two errors comes first for an async function on a closed secret is not part of the contract.
      op(r, 3);
      throwsCode(() => secret.withBytes((async () => 1) as never), s.closed ? ['ERR_ASYNC_ACTION', 'ERR_SECRET_CLOSED'] : ['ERR_ASYNC_ACTION'], 'withBytes(async action)');
      // @ts-expect-error the types refuse a thenable result: this checks that the code does too
      throwsCode(() => secret.withBytes(() => Promise.resolve(2)), [s.closed ? 'ERR_SECRET_CLOSED' : 'ERR_ASYNC_ACTION'], 'withBytes(action returning a promise)');
      throwsCode(() => secret.withBytes(() => ({ then() {} })), [s.closed ? 'ERR_SECRET_CLOSED' : 'ERR_ASYNC_ACTION'], 'withBytes(action returning a thenable)');
      return;
    }
    op(r);
    if (s.closed) {
      throwsCode(() => secret.withBytes(() => 0), ['ERR_SECRET_CLOSED'], 'withBytes() after close');
      return;
    }
    if (this.kind === 'plain') {
      const token = {};
      assert.equal(
        secret.withBytes((view) => {
          assert.ok(matches(view, s.bytes), 'the view does not hold the bytes');
          return token;
        }),
        token,
        'withBytes() did not return the result of its action',
      );
    } else if (this.kind === 'throw') {
      const sentinel = new Error('sentinel');
      let seen = false;
      assert.throws(
        () =>
          secret.withBytes((view) => {
            seen = matches(view, s.bytes);
            throw sentinel;
          }),
        (e) => e === sentinel,
      );
      assert.ok(seen, 'the throwing action did not see the bytes');
    } else if (this.kind === 'nested') {
      const otherIndex = this.other % m.secrets.length;
      const o = m.secrets[otherIndex] as ModelSecret;
      const other = r.secrets[otherIndex] as Secret;
      op(r, 2);
      secret.withBytes((outer) => {
        assert.ok(matches(outer, s.bytes), 'the outer view does not hold the bytes');
        secret.withBytes((inner) => {
          assert.ok(matches(inner, s.bytes) && matches(outer, s.bytes), 'a nested access of the same secret');
          secret.withBytes((innermost) => assert.ok(matches(innermost, s.bytes), 'a doubly nested access'));
        });
        if (o.closed) throwsCode(() => other.withBytes(() => 0), ['ERR_SECRET_CLOSED'], 'a nested access of a closed secret');
        else other.withBytes((theirs) => assert.ok(matches(theirs, o.bytes) && matches(outer, s.bytes), `a nested access of secret #${otherIndex}`));
        assert.ok(matches(outer, s.bytes), 'the outer view changed after the nested accesses ended');
      });
    } else {
      const live = liveCount(m);
      op(r, 3);
      secret.withBytes((view) => {
        secret.close();
        assert.equal(secret.closed, true, 'closed is false after close() inside an action');
        throwsCode(() => secret.withBytes(() => 0), ['ERR_SECRET_CLOSED'], 'withBytes() after close() inside an action');
        assert.ok(matches(view, s.bytes), 'the running action lost its bytes when the secret was closed');
        assert.equal(r.factory.stats().inUse, live, 'freed while an access was open');
      });
      s.closed = true;
    }
  }
  toString(): string {
    return `withBytes(secret[${this.slot}], ${this.kind}${this.kind === 'nested' ? `, other secret[${this.other}]` : ''})`;
  }
}

class StartAsyncCommand extends Command {
  readonly name = 'withBytesAsync';
  constructor(
    readonly slot: number,
    readonly rejects: boolean,
    /** When released, the action closes its own secret before it ends. */
    readonly closes: boolean,
  ) {
    super();
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.secrets.length > 0 && m.pending.length < MAX_PENDING;
  }
  async exec(m: FuzzModel, r: FuzzReal): Promise<void> {
    const index = this.slot % m.secrets.length;
    const s = m.secrets[index] as ModelSecret;
    const secret = r.secrets[index] as Secret;
    const seen: RealPending['seen'] = {};
    const token = {};
    const sentinel = new Error('sentinel');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    op(r);
    const { rejects, closes } = this;
    const settled = secret
      .withBytesAsync(async (view) => {
        seen.before = matches(view, s.bytes);
        await gate;
        if (closes) {
          secret.close();
          seen.closedInside = secret.closed;
        }
        seen.after = matches(view, s.bytes);
        if (rejects) throw sentinel;
        return token;
      })
      .then(
        (value): Settled => ({ ok: true, value }),
        (error: unknown): Settled => ({ ok: false, error }),
      );
    if (s.closed) {
      const outcome = await settled;
      assert.ok(!outcome.ok && codeOf(outcome.error) === 'ERR_SECRET_CLOSED', 'withBytesAsync() after close must reject with ERR_SECRET_CLOSED');
      return;
    }
    m.pending.push({ secret: index, rejects, closes });
    r.pending.push({ release, settled, seen, token: rejects ? sentinel : token });
    s.pending += 1;
  }
  toString(): string {
    return `withBytesAsync(secret[${this.slot}], held pending${this.closes ? ', will close its secret' : ''}${this.rejects ? ', will reject' : ''})`;
  }
}

class SettleAsyncCommand extends Command {
  readonly name = 'settle';
  constructor(readonly which: number) {
    super();
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.pending.length > 0;
  }
  async exec(m: FuzzModel, r: FuzzReal): Promise<void> {
    const at = this.which % m.pending.length;
    const [mp] = m.pending.splice(at, 1) as [ModelPending];
    const [rp] = r.pending.splice(at, 1) as [RealPending];
    rp.release();
    const outcome = await rp.settled;
    const s = m.secrets[mp.secret] as ModelSecret;
    s.pending -= 1;
    if (mp.closes) {
      s.closed = true;
      assert.equal(rp.seen.closedInside, true, 'closed is false after close() inside an async action');
    }
    assert.equal(rp.seen.before, true, 'the async action did not see the bytes when it started');
    assert.equal(rp.seen.after, true, 'the async action lost its bytes while it was pending');
    if (mp.rejects) assert.ok(!outcome.ok && outcome.error === rp.token, 'the rejection of the action did not pass through');
    else assert.ok(outcome.ok && outcome.value === rp.token, 'withBytesAsync() did not resolve to the result of its action');
  }
  toString(): string {
    return `settle(pending[${this.which}])`;
  }
}

class ReadCommand extends Command {
  readonly name = 'read';
  constructor(
    readonly slot: number,
    readonly chunks: readonly number[],
    readonly zeroFirst: boolean,
    readonly closeMidway: boolean,
  ) {
    super();
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const index = this.slot % m.secrets.length;
    const s = m.secrets[index] as ModelSecret;
    const secret = r.secrets[index] as Secret;
    op(r);
    if (s.closed) {
      throwsCode(() => secret.reader(), ['ERR_SECRET_CLOSED'], 'reader() after close');
      return;
    }
    const reader = secret.reader();
    if (this.zeroFirst) {
      op(r);
      assert.equal(reader.read(new Uint8Array(0)), 0, 'read() into an empty buffer');
    }
    const out = Buffer.alloc(s.size);
    let got = 0;
    for (let i = 0; got < s.size; i += 1) {
      // At most ~64 reads per secret, whatever its size.
      const length = Math.max(this.chunks[i % this.chunks.length] as number, Math.ceil(s.size / 64));
      const scratch = Buffer.alloc(length + 6, 0xee);
      const target = scratch.subarray(3, 3 + length);
      op(r);
      const n = reader.read(target);
      assert.equal(n, Math.min(length, s.size - got), `read() #${i} returned ${n}`);
      assert.ok(scratch.subarray(0, 3).every((b) => b === 0xee) && scratch.subarray(3 + n).every((b) => b === 0xee), 'read() wrote outside its part of the target');
      target.copy(out, got, 0, n);
      got += n;
      if (this.closeMidway && got < s.size) {
        op(r, 2);
        secret.close();
        s.closed = true;
        throwsCode(() => reader.read(new Uint8Array(8)), ['ERR_SECRET_CLOSED'], 'read() after close');
        assert.ok(out.subarray(0, got).equals(s.bytes.subarray(0, got)), 'the bytes read before close');
        return;
      }
    }
    op(r);
    assert.equal(reader.read(new Uint8Array(8)), 0, 'read() at the end must return 0');
    assert.ok(out.equals(s.bytes), 'the reader did not copy the bytes in order');
  }
  toString(): string {
    return `read(secret[${this.slot}], chunks ${this.chunks.join('/')}${this.zeroFirst ? ', an empty read first' : ''}${this.closeMidway ? ', close midway' : ''})`;
  }
}

type EqualsKind = 'bytes' | 'offset' | 'mutated' | 'shorter' | 'longer' | 'secret' | 'self';

class EqualsCommand extends Command {
  readonly name = 'equals';
  constructor(
    readonly slot: number,
    readonly kind: EqualsKind,
    readonly other: number,
    readonly position: number,
  ) {
    super();
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const index = this.slot % m.secrets.length;
    const s = m.secrets[index] as ModelSecret;
    const secret = r.secrets[index] as Secret;
    const otherIndex = this.other % m.secrets.length;
    const o = m.secrets[otherIndex] as ModelSecret;
    let argument: Uint8Array | Secret;
    let expected: boolean;
    switch (this.kind) {
      case 'bytes':
        argument = Buffer.from(s.bytes);
        expected = true;
        break;
      case 'offset': {
        const whole = Buffer.alloc(s.size + 9, 0x5a);
        s.bytes.copy(whole, 5);
        argument = whole.subarray(5, 5 + s.size);
        expected = true;
        break;
      }
      case 'mutated': {
        const changed = Buffer.from(s.bytes);
        const at = this.position % s.size;
        changed[at] = (changed[at] as number) ^ (1 << (this.position % 8));
        argument = changed;
        expected = false;
        break;
      }
      case 'shorter':
        argument = s.bytes.subarray(0, s.size - 1);
        expected = false;
        break;
      case 'longer':
        argument = Buffer.concat([s.bytes, Buffer.of(this.position & 0xff)]);
        expected = false;
        break;
      case 'self':
        argument = secret;
        expected = true;
        break;
      case 'secret':
        argument = r.secrets[otherIndex] as Secret;
        expected = s.bytes.equals(o.bytes);
        break;
    }
    op(r);
    if (s.closed || (this.kind === 'secret' && o.closed)) {
      throwsCode(() => secret.equals(argument), ['ERR_SECRET_CLOSED'], 'equals() with a closed secret');
      return;
    }
    assert.equal(secret.equals(argument), expected, `equals(${this.kind}) must be ${expected}`);
  }
  toString(): string {
    const detail = this.kind === 'secret' ? ` secret[${this.other}]` : this.kind === 'mutated' ? ` at ${this.position}` : '';
    return `equals(secret[${this.slot}], ${this.kind}${detail})`;
  }
}

type CloseTarget = 'any' | 'open' | 'pending';
type CloseHow = 'close' | 'dispose' | 'twice';

class CloseCommand extends Command {
  readonly name = 'close';
  constructor(
    readonly slot: number,
    readonly target: CloseTarget,
    readonly how: CloseHow,
  ) {
    super();
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const open = openIndexes(m);
    const pending = open.filter((i) => (m.secrets[i] as ModelSecret).pending > 0);
    const among = this.target === 'pending' && pending.length > 0 ? pending : this.target !== 'any' && open.length > 0 ? open : m.secrets.map((_, i) => i);
    const index = pick(among, this.slot);
    const secret = r.secrets[index] as Secret;
    op(r, this.how === 'twice' ? 2 : 1);
    if (this.how === 'dispose') secret[Symbol.dispose]();
    else secret.close();
    if (this.how === 'twice') secret.close();
    (m.secrets[index] as ModelSecret).closed = true;
  }
  toString(): string {
    return `close(${this.target === 'any' ? 'secret' : `${this.target} secret`}[${this.slot}]${this.how === 'close' ? '' : `, ${this.how}`})`;
  }
}

type ClosedUse = 'withBytes' | 'withBytesAsync' | 'reader' | 'equals' | 'equals-by-other' | 'close-again';

class UseClosedCommand extends Command {
  readonly name = 'useAfterClose';
  constructor(
    readonly slot: number,
    readonly use: ClosedUse,
  ) {
    super();
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.secrets.some((s) => s.closed);
  }
  async exec(m: FuzzModel, r: FuzzReal): Promise<void> {
    const closed = m.secrets.flatMap((s, i) => (s.closed ? [i] : []));
    const index = pick(closed, this.slot);
    const s = m.secrets[index] as ModelSecret;
    const secret = r.secrets[index] as Secret;
    op(r);
    switch (this.use) {
      case 'withBytes':
        throwsCode(() => secret.withBytes(() => 0), ['ERR_SECRET_CLOSED'], 'withBytes() after close');
        break;
      case 'withBytesAsync': {
        const outcome = await secret.withBytesAsync(() => 0).then(
          () => undefined,
          (error: unknown) => codeOf(error),
        );
        assert.equal(outcome, 'ERR_SECRET_CLOSED', 'withBytesAsync() after close');
        break;
      }
      case 'reader':
        throwsCode(() => secret.reader(), ['ERR_SECRET_CLOSED'], 'reader() after close');
        break;
      case 'equals':
        throwsCode(() => secret.equals(Buffer.from(s.bytes)), ['ERR_SECRET_CLOSED'], 'equals() after close');
        break;
      case 'equals-by-other': {
        const open = openIndexes(m);
        if (open.length === 0) break;
        const other = r.secrets[pick(open, this.slot)] as Secret;
        throwsCode(() => other.equals(secret), ['ERR_SECRET_CLOSED'], 'an open secret compared with a closed one');
        break;
      }
      case 'close-again':
        secret.close();
        assert.equal(secret.closed, true);
        break;
    }
  }
  toString(): string {
    return `useAfterClose(closed secret[${this.slot}], ${this.use})`;
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const slotArb = fc.nat({ max: 63 });
const sizeArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 64 }), weight: 6 },
  { arbitrary: fc.constantFrom(4095, 4096, 4097), weight: 1 },
  { arbitrary: fc.integer({ min: 65, max: 12_288 }), weight: 2 },
);
const fillArb = fc.nat({ max: 0xffff });

function commandArbitraries(): fc.Arbitrary<FuzzCommand>[] {
  return [
    fc
      .tuple(sizeArb, fillArb, fc.nat({ max: 16 }), fc.option(slotArb, { freq: 4 }))
      .map(([size, fill, offset, twinOf]) => new NewCommand(size, fill, offset, twinOf)),
    sizeArb.map((size) => new CreateRandomCommand(size)),
    fc
      .tuple(fc.integer({ min: 2, max: 5000 }), fillArb, fc.constantFrom(false, false, false, true))
      .map(([size, fill, short]) => new FromFdCommand(size, fill, short)),
    fc
      .tuple(slotArb, fc.constantFrom<WithBytesKind>('plain', 'plain', 'nested', 'nested', 'throw', 'close-inside', 'async-action'), slotArb)
      .map(([slot, kind, other]) => new WithBytesCommand(slot, kind, other)),
    fc.tuple(slotArb, fc.boolean(), fc.nat({ max: 5 })).map(([slot, rejects, mode]) => new StartAsyncCommand(slot, rejects, mode === 0)),
    fc.tuple(slotArb, fc.boolean()).map(([slot, rejects]) => new StartAsyncCommand(slot, rejects && slot % 3 === 0, false)),
    slotArb.map((which) => new SettleAsyncCommand(which)),
    slotArb.map((which) => new SettleAsyncCommand(which)),
    fc
      .tuple(slotArb, fc.array(fc.integer({ min: 1, max: 4200 }), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.boolean())
      .map(([slot, chunks, zeroFirst, closeMidway]) => new ReadCommand(slot, chunks, zeroFirst, closeMidway && slot % 4 === 0)),
    fc
      .tuple(slotArb, fc.constantFrom<EqualsKind>('bytes', 'offset', 'mutated', 'shorter', 'longer', 'secret', 'secret', 'self'), slotArb, fc.nat({ max: 1 << 16 }))
      .map(([slot, kind, other, position]) => new EqualsCommand(slot, kind, other, position)),
    fc
      .tuple(slotArb, fc.constantFrom<CloseTarget>('any', 'open', 'open', 'pending', 'pending'), fc.constantFrom<CloseHow>('close', 'close', 'dispose', 'twice'))
      .map(([slot, target, how]) => new CloseCommand(slot, target, how)),
    fc
      .tuple(slotArb, fc.constantFrom<ClosedUse>('withBytes', 'withBytesAsync', 'reader', 'equals', 'equals-by-other', 'close-again'))
      .map(([slot, use]) => new UseClosedCommand(slot, use)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Running

function formatSequence(counterexample: unknown): { lines: string; replayPath: string | null } {
  const text = String(counterexample);
  const match = /\s*\/\*replayPath="([^"]*)"\*\/\s*$/.exec(text);
  const sequence = match === null ? text : text.slice(0, match.index);
  const commands = sequence === '' ? [] : sequence.split(/,(?=[a-zA-Z]+\()/);
  return { lines: commands.map((c, i) => `  ${String(i + 1).padStart(2)}. ${c}`).join('\n'), replayPath: match?.[1] ?? null };
}

/**
 * Fuzzes a backend against the model of the contract: `numRuns` random command sequences, each on
 * a fresh factory, each ending with every access released and every secret closed and freed. A
 * failing sequence is shrunk, and the result says how to replay it (`seed`, `path`, `replayPath`).
 * Never touches a view outside its action, so a backend that faults on such a touch is safe to fuzz.
 * @throws {TypeError} (rejects) `ERR_INVALID_ARG_TYPE` for options of the wrong type.
 * @throws {RangeError} (rejects) `ERR_INVALID_ARG_VALUE` for `numRuns` or `maxCommands` below 1.
 * @throws {SecureMemoryError} (rejects) `ERR_BACKEND_UNAVAILABLE` when the backend cannot be loaded.
 * @example
 * ```ts
 * const result = await runFuzz({ module: '@secure-memory/sodium', seed: 424242, numRuns: 300 });
 * if (!result.ok) console.error(result.failure?.text);
 * ```
 */
export async function runFuzz(config: FuzzOptions): Promise<FuzzResult> {
  assertOptions(config, 'config');
  if (typeof config.module !== 'string' || config.module === '') {
    throw Object.assign(new TypeError('The "module" option must be a non-empty module specifier'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  assertOptions(config.options, 'options');
  for (const key of ['seed', 'numRuns', 'maxCommands'] as const) {
    const value = config[key];
    if (value !== undefined && !Number.isSafeInteger(value)) {
      throw Object.assign(new TypeError(`The "${key}" option must be an integer`), { code: 'ERR_INVALID_ARG_TYPE' });
    }
    if (key !== 'seed' && value !== undefined && value < 1) {
      throw Object.assign(new RangeError(`The "${key}" option must be at least 1`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
  }
  for (const key of ['path', 'replayPath'] as const) {
    if (config[key] !== undefined && typeof config[key] !== 'string') {
      throw Object.assign(new TypeError(`The "${key}" option must be a string`), { code: 'ERR_INVALID_ARG_TYPE' });
    }
  }
  if (config.progress !== undefined && typeof config.progress !== 'function') {
    throw Object.assign(new TypeError('The "progress" option must be a function'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  const seed = config.seed ?? (Date.now() ^ (Math.random() * 0x100000000)) | 0;
  const numRuns = config.numRuns ?? 100;
  // Fails early, outside fast-check, when the backend does not load.
  await loadTarget(config.module, config.options);

  const dir = mkdtempSync(join(tmpdir(), 'secure-memory-fuzz-'));
  const tally: Tally = { operations: 0, commands: 0, counting: true, byName: {} };
  let runsDone = 0;
  let unhandled = 0;
  const onUnhandled = (): void => {
    unhandled += 1;
  };
  process.on('unhandledRejection', onUnhandled);
  /** One run: a fresh factory, the commands, then everything released, closed and checked. */
  const runOne = async (commands: Iterable<FuzzCommand>): Promise<void> => {
    const factory = await loadTarget(config.module, config.options);
    const lockedAtStart = factory.stats().lockedBytes;
    const model: FuzzModel = { secrets: [], pending: [], allocated: 0, hasFromFd: typeof factory.fromFd === 'function' };
    const real: FuzzReal = { factory, secrets: [], pending: [], dir, tally };
    const unhandledBefore = unhandled;
    let closeError: unknown;
    try {
      await fc.asyncModelRun(() => ({ model, real }), commands);
    } finally {
      // Release the pending accesses and close everything, also after a failure, so that a failed
      // run leaves no region open for the next one. The accesses settle after the closes: they are
      // the last ones, so they free their secrets.
      const settling = real.pending.splice(0).map((p) => {
        p.release();
        return p.settled;
      });
      for (const secret of real.secrets) {
        try {
          secret.close();
        } catch (error) {
          closeError ??= error;
        }
      }
      await Promise.all(settling);
    }
    if (closeError !== undefined) throw closeError;
    const stats = factory.stats();
    assert.equal(stats.inUse, 0, 'secrets still in use after every access settled and every secret was closed');
    assert.equal(stats.lockedBytes, lockedAtStart, 'locked bytes were not given back after every secret was closed');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(unhandled, unhandledBefore, 'an unhandled promise rejection during the run');
  };
  const property = fc.asyncProperty(
    fc.commands(commandArbitraries(), {
      maxCommands: config.maxCommands ?? DEFAULT_MAX_COMMANDS,
      size: 'max',
      ...(config.replayPath === undefined ? {} : { replayPath: config.replayPath }),
    }),
    async (commands) => {
      try {
        await runOne(commands);
      } catch (error) {
        // The first failure ends the counting: the runs that shrink it are not more fuzzing.
        tally.counting = false;
        throw error;
      }
      if (tally.counting) {
        runsDone += 1;
        config.progress?.(runsDone, numRuns);
      }
    },
  );
  let details: fc.RunDetails<[Iterable<FuzzCommand>]>;
  try {
    details = await fc.check(property, {
      seed,
      numRuns,
      ...(config.path === undefined ? {} : { path: config.path, endOnFailure: true }),
    });
  } finally {
    process.off('unhandledRejection', onUnhandled);
    rmSync(dir, { recursive: true, force: true });
  }
  const result: FuzzResult = {
    ok: !details.failed,
    seed,
    numRuns: details.numRuns,
    commandsRun: tally.commands,
    operations: tally.operations,
    commandCounts: { ...tally.byName },
  };
  if (details.failed) {
    const path = details.counterexamplePath ?? '';
    const { lines, replayPath } = details.counterexample === null ? { lines: '', replayPath: null } : formatSequence(details.counterexample[0]);
    const error =
      details.errorInstance instanceof Error ? `${details.errorInstance.name}: ${details.errorInstance.message}` : String(details.errorInstance ?? (details.interrupted ? 'interrupted' : 'failed'));
    const replay = `{ seed: ${seed}, path: ${JSON.stringify(path)}${replayPath === null ? '' : `, replayPath: ${JSON.stringify(replayPath)}`} }`;
    result.failure = {
      seed,
      path,
      replayPath,
      counterexample: lines,
      error,
      text: [
        `fuzzing ${config.module}${config.options === undefined ? '' : ` ${JSON.stringify(config.options)}`} failed after ${details.numRuns} run(s), shrunk ${details.numShrinks} time(s)`,
        `seed ${seed}, path ${JSON.stringify(path)}: replay with runFuzz(${replay})`,
        'shrunk command sequence:',
        lines,
        `error: ${error}`,
      ].join('\n'),
    };
  }
  return result;
}
