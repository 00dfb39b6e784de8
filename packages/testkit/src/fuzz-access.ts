/**
 * The fuzz's commands that use secrets (see `fuzz.ts`): `withBytes` (plain, nested, throwing,
 * closing inside, with an async action), `withBytesAsync` held pending and settled later in any
 * order (some rejecting, some closing their secret), `reader().read` in chunks (also closed
 * midway) and `equals` against bytes and secrets.
 * @module
 */
import assert from 'node:assert/strict';
import type { Secret } from '@secure-memory/core';
import {
  Command,
  type FuzzModel,
  type FuzzReal,
  MAX_PENDING,
  type ModelPending,
  type ModelSecret,
  type RealPending,
  type Settled,
  SlotCommand,
  codeOf,
  liveCount,
  matches,
  op,
  throwsCode,
} from './fuzz-model.js';

export type WithBytesKind = 'plain' | 'nested' | 'throw' | 'close-inside' | 'async-action';

export class WithBytesCommand extends SlotCommand {
  readonly name = 'withBytes';
  constructor(
    slot: number,
    readonly kind: WithBytesKind,
    readonly other: number,
  ) {
    super(slot);
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const { s, secret } = this.aim(m, r);
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

export class StartAsyncCommand extends SlotCommand {
  readonly name = 'withBytesAsync';
  constructor(
    slot: number,
    readonly rejects: boolean,
    /** When released, the action closes its own secret before it ends. */
    readonly closes: boolean,
  ) {
    super(slot);
  }
  override check(m: Readonly<FuzzModel>): boolean {
    return m.secrets.length > 0 && m.pending.length < MAX_PENDING;
  }
  async exec(m: FuzzModel, r: FuzzReal): Promise<void> {
    const { index, s, secret } = this.aim(m, r);
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

export class SettleAsyncCommand extends Command {
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

export class ReadCommand extends SlotCommand {
  readonly name = 'read';
  constructor(
    slot: number,
    readonly chunks: readonly number[],
    readonly zeroFirst: boolean,
    readonly closeMidway: boolean,
  ) {
    super(slot);
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const { s, secret } = this.aim(m, r);
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

export type EqualsKind = 'bytes' | 'offset' | 'mutated' | 'shorter' | 'longer' | 'secret' | 'self';

export class EqualsCommand extends SlotCommand {
  readonly name = 'equals';
  constructor(
    slot: number,
    readonly kind: EqualsKind,
    readonly other: number,
    readonly position: number,
  ) {
    super(slot);
  }
  exec(m: FuzzModel, r: FuzzReal): void {
    const { s, secret } = this.aim(m, r);
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
