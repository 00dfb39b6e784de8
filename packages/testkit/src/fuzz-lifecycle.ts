/**
 * The fuzz's commands that make and end secrets (see `fuzz.ts`): `new` (from a slice of a larger
 * buffer, or a twin of an open secret), `createRandom`, `fromFd` (also one byte short), `close`
 * (plain, by `Symbol.dispose`, twice; of any, an open or a pending secret), and every use of a
 * closed secret.
 * @module
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Secret } from '@secure-memory/core';
import { Command, type FuzzModel, type FuzzReal, MAX_SECRETS, type ModelSecret, add, codeOf, op, openIndexes, pick, throwsCode } from './fuzz-model.js';
import { patternBytes } from './pattern.js';

export class NewCommand extends Command {
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

export class CreateRandomCommand extends Command {
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

export class FromFdCommand extends Command {
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

export type CloseTarget = 'any' | 'open' | 'pending';
export type CloseHow = 'close' | 'dispose' | 'twice';

export class CloseCommand extends Command {
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

export type ClosedUse = 'withBytes' | 'withBytesAsync' | 'reader' | 'equals' | 'equals-by-other' | 'close-again';

export class UseClosedCommand extends Command {
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
