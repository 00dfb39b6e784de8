/**
 * The contract suite, in process: every method and error code of DESIGN's contract, written once
 * and run both by vitest (`describeConformance`) and by `runConformance` (in a child process).
 * Each check takes a fresh factory and throws when the backend breaks the contract.
 * @module
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  GUARANTEE_FLAGS,
  type Secret,
  type SecretFactory,
} from '@secure-memory/core';
import {
  REGION_PROBE,
} from '@secure-memory/core/backend';
import { findMapping, readMappings } from './proc.js';

/** One named check of the contract. */
export interface ContractCheck {
  name: string;
  run(factory: SecretFactory): void | Promise<void>;
}

/** One bad input and the error code it must produce. */
export interface BadInputCase {
  name: string;
  /** The stable code expected. */
  code: string;
  /** The error class expected, by its `name` in the prototype chain. */
  kind: 'TypeError' | 'RangeError' | 'Error';
  call(factory: SecretFactory, fixture: BadInputFixture): unknown;
}

/** Secrets prepared for the bad-input table: one open, one closed. */
interface BadInputFixture {
  open: Secret;
  closed: Secret;
}

/** Copies a secret's bytes out (test code only: this puts them in the heap). */
function bytesOf(secret: Secret): Buffer {
  return secret.withBytes((b) => Buffer.from(b));
}

/** Asserts that `fn` throws (or rejects with) an error carrying `code`. */
export async function expectCode(fn: () => unknown, code: string, kind?: BadInputCase['kind']): Promise<void> {
  let outcome: unknown;
  try {
    outcome = fn();
  } catch (error) {
    checkError(error, code, kind);
    return;
  }
  if (outcome instanceof Promise) {
    try {
      await outcome;
    } catch (error) {
      checkError(error, code, kind);
      return;
    }
  }
  assert.fail(`expected an error with code ${code}, but the call succeeded`);
}

function checkError(error: unknown, code: string, kind?: BadInputCase['kind']): void {
  assert.ok(error instanceof Error, `expected an Error with code ${code}, got ${String(error)}`);
  assert.equal((error as { code?: unknown }).code, code, `wrong code (message: ${error.message})`);
  if (kind === 'TypeError') assert.ok(error instanceof TypeError, `${code} must be a TypeError`);
  if (kind === 'RangeError') assert.ok(error instanceof RangeError, `${code} must be a RangeError`);
}

/** The permissions of the mapping holding the secret's region in this process, if the backend says where it is. */
function regionPerms(secret: Secret): string | undefined {
  const probe = (secret as unknown as Record<symbol, (() => { address: bigint } | undefined) | undefined>)[REGION_PROBE];
  const location = typeof probe === 'function' ? probe.call(secret) : undefined;
  if (location === undefined) return undefined;
  return findMapping(readMappings('self'), location.address)?.perms;
}

/**
 * Asserts that the secret is idle again: where the manifest promises no access when idle and the
 * backend says where the region is, its mapping must not be readable; where views are revoked, the
 * kept view must be empty.
 */
function assertIdle(factory: SecretFactory, secret: Secret, kept: Uint8Array | undefined): void {
  if (factory.guarantees.noAccessWhenIdle) {
    const perms = regionPerms(secret);
    if (perms !== undefined) assert.ok(!perms.startsWith('r'), `the region is ${perms} after the access ended`);
  }
  if (factory.guarantees.viewsRevoked && kept !== undefined) {
    assert.equal(kept.byteLength, 0, 'a view kept past its action was not revoked');
  }
}

const SIZES = [1, 31, 32, 4095, 4096, 4097, 65_536];

/** Every contract check, in the order they run. */
export const CONTRACT_CHECKS: readonly ContractCheck[] = [
  {
    name: 'the factory has a name and a complete, frozen manifest',
    run(factory) {
      assert.equal(typeof factory.name, 'string');
      assert.ok(factory.name.length > 0);
      for (const flag of GUARANTEE_FLAGS) assert.equal(typeof factory.guarantees[flag], 'boolean', `guarantees.${flag}`);
      assert.deepEqual(Object.keys(factory.guarantees).sort(), [...GUARANTEE_FLAGS].sort());
      assert.ok(Object.isFrozen(factory.guarantees), 'the manifest must be frozen');
    },
  },
  {
    name: 'createRandom gives views of exactly the requested size',
    run(factory) {
      for (const size of SIZES) {
        const secret = factory.createRandom(size);
        assert.equal(secret.size, size);
        assert.equal(secret.withBytes((b) => b.byteLength), size);
        secret.close();
      }
    },
  },
  {
    name: 'createRandom bytes are random: not zero, different each time',
    run(factory) {
      const a = factory.createRandom(32);
      const b = factory.createRandom(32);
      const bytesA = bytesOf(a);
      assert.ok(bytesA.some((x) => x !== 0), 'all zero');
      assert.ok(!bytesA.equals(bytesOf(b)), 'two random secrets are equal');
      a.close();
      b.close();
    },
  },
  {
    name: 'new copies the source and zero-fills it',
    run(factory) {
      for (const size of [1, 32, 5000]) {
        const source = randomBytes(size);
        const copy = Buffer.from(source);
        const secret = factory.new(source);
        assert.ok(source.every((x) => x === 0), 'the source was not wiped');
        assert.ok(bytesOf(secret).equals(copy), 'the secret does not hold the source bytes');
        secret.close();
      }
    },
  },
  {
    name: 'new wipes only the source view, not the rest of its buffer',
    run(factory) {
      const whole = Buffer.alloc(64, 7);
      const secret = factory.new(whole.subarray(16, 48));
      assert.ok(whole.subarray(16, 48).every((x) => x === 0));
      assert.ok(whole.subarray(0, 16).every((x) => x === 7) && whole.subarray(48).every((x) => x === 7));
      assert.ok(bytesOf(secret).every((x) => x === 7));
      secret.close();
    },
  },
  {
    name: 'fromFd reads exactly size bytes from a descriptor, and keeps nothing on a short read (where offered)',
    async run(factory) {
      if (typeof factory.fromFd !== 'function') return;
      const fromFd = factory.fromFd.bind(factory);
      const dir = mkdtempSync(join(tmpdir(), 'secure-memory-fd-'));
      const path = join(dir, 'key');
      const bytes = randomBytes(40);
      writeFileSync(path, bytes);
      const fd = openSync(path, 'r');
      try {
        const secret = fromFd(fd, 32);
        assert.ok(bytesOf(secret).equals(bytes.subarray(0, 32)));
        const before = factory.stats().inUse;
        await expectCode(() => fromFd(fd, 32), 'ERR_INVALID_SIZE', 'RangeError');
        assert.equal(factory.stats().inUse, before, 'a short read kept a secret');
        await expectCode(() => fromFd('3' as never, 32), 'ERR_INVALID_ARG_TYPE', 'TypeError');
        await expectCode(() => fromFd(-1, 32), 'ERR_OUT_OF_RANGE', 'RangeError');
        await expectCode(() => fromFd(fd, 0), 'ERR_INVALID_SIZE', 'RangeError');
        secret.close();
      } finally {
        closeSync(fd);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'withBytes returns the action result and passes a Uint8Array',
    run(factory) {
      const secret = factory.createRandom(16);
      assert.equal(
        secret.withBytes((b) => (b instanceof Uint8Array ? 'view' : 'other')),
        'view',
      );
      secret.close();
    },
  },
  {
    name: 'nested access sees the same bytes and the secret stays usable',
    run(factory) {
      const secret = factory.createRandom(32);
      const outer = secret.withBytes((a) => {
        const first = Buffer.from(a);
        const inner = secret.withBytes((b) => secret.withBytes((c) => Buffer.from(b).equals(Buffer.from(c))));
        assert.ok(inner);
        assert.ok(Buffer.from(a).equals(first), 'the outer view changed during a nested access');
        return first;
      });
      assert.ok(bytesOf(secret).equals(outer));
      let kept: Uint8Array | undefined;
      secret.withBytes((b) => {
        kept = b;
      });
      assertIdle(factory, secret, kept);
      secret.close();
    },
  },
  {
    name: 'concurrent async accesses share the region and all settle',
    async run(factory) {
      const secret = factory.createRandom(32);
      const expected = bytesOf(secret);
      const gates: (() => void)[] = [];
      const pending = [0, 1, 2].map((i) =>
        secret.withBytesAsync(async (bytes) => {
          await new Promise<void>((resolve) => gates.push(resolve));
          return Buffer.from(bytes).equals(expected) ? i : -1;
        }),
      );
      while (gates.length < 3) await new Promise((r) => setImmediate(r));
      assert.ok(secret.withBytes((b) => Buffer.from(b).equals(expected)), 'a sync access during async ones');
      for (const open of gates.reverse()) open();
      assert.deepEqual(await Promise.all(pending), [0, 1, 2]);
      let kept: Uint8Array | undefined;
      secret.withBytes((b) => {
        kept = b;
      });
      assertIdle(factory, secret, kept);
      secret.close();
    },
  },
  {
    name: 'an action that throws passes its error through and leaves the region idle',
    run(factory) {
      const secret = factory.createRandom(32);
      const boom = new Error('boom');
      let kept: Uint8Array | undefined;
      assert.throws(
        () =>
          secret.withBytes((b) => {
            kept = b;
            throw boom;
          }),
        (e) => e === boom,
      );
      assertIdle(factory, secret, kept);
      assert.equal(secret.withBytes((b) => b.byteLength), 32);
      secret.close();
    },
  },
  {
    name: 'an action that rejects passes its error through and leaves the region idle',
    async run(factory) {
      const secret = factory.createRandom(32);
      const boom = new Error('boom');
      let kept: Uint8Array | undefined;
      await assert.rejects(
        secret.withBytesAsync(async (b) => {
          kept = b;
          await Promise.resolve();
          throw boom;
        }),
        (e) => e === boom,
      );
      assertIdle(factory, secret, kept);
      assert.equal(await secret.withBytesAsync((b) => b.byteLength), 32);
      secret.close();
    },
  },
  {
    name: 'a thenable or async action in withBytes gives ERR_ASYNC_ACTION and the secret stays usable',
    async run(factory) {
      const secret = factory.createRandom(8);
      // @ts-expect-error the types refuse a thenable result: this checks that the code does too
      await expectCode(() => secret.withBytes(() => Promise.resolve(1)), 'ERR_ASYNC_ACTION');
      await expectCode(() => secret.withBytes(() => ({ then() {} })), 'ERR_ASYNC_ACTION');
      // @ts-expect-error the types refuse an async action: this checks that the code does too
      await expectCode(() => secret.withBytes(async () => 1), 'ERR_ASYNC_ACTION');
      assert.equal(secret.withBytes((b) => b.byteLength), 8);
      assert.equal(secret.closed, false);
      secret.close();
    },
  },
  {
    name: 'close inside an action refuses new access at once and frees when the action ends',
    run(factory) {
      const secret = factory.createRandom(32);
      const before = factory.stats().inUse;
      secret.withBytes((bytes) => {
        secret.close();
        assert.equal(secret.closed, true);
        assert.equal(bytes.byteLength, 32, 'the running action lost its view');
        assert.throws(() => secret.withBytes(() => 0), { code: 'ERR_SECRET_CLOSED' });
        assert.equal(factory.stats().inUse, before, 'freed while an access was open');
      });
      assert.equal(factory.stats().inUse, before - 1, 'not freed after the last access ended');
      assert.throws(() => secret.withBytes(() => 0), { code: 'ERR_SECRET_CLOSED' });
    },
  },
  {
    name: 'close while an async access is pending frees when it settles',
    async run(factory) {
      const secret = factory.createRandom(32);
      const expected = bytesOf(secret);
      const before = factory.stats().inUse;
      let release!: () => void;
      const pending = secret.withBytesAsync(async (bytes) => {
        await new Promise<void>((r) => {
          release = r;
        });
        return Buffer.from(bytes).equals(expected);
      });
      await new Promise((r) => setImmediate(r));
      secret.close();
      assert.equal(secret.closed, true);
      await expectCode(() => secret.withBytesAsync(() => 0), 'ERR_SECRET_CLOSED');
      assert.equal(factory.stats().inUse, before, 'freed while an async access was pending');
      release();
      assert.equal(await pending, true, 'the pending access lost its bytes');
      assert.equal(factory.stats().inUse, before - 1);
    },
  },
  {
    name: 'every use after close throws ERR_SECRET_CLOSED; close is idempotent',
    async run(factory) {
      const secret = factory.createRandom(32);
      const other = factory.createRandom(32);
      const reader = secret.reader();
      secret.close();
      secret.close();
      secret[Symbol.dispose]();
      assert.equal(secret.closed, true);
      assert.equal(secret.size, 32);
      await expectCode(() => secret.withBytes(() => 0), 'ERR_SECRET_CLOSED');
      await expectCode(() => secret.withBytesAsync(() => 0), 'ERR_SECRET_CLOSED');
      await expectCode(() => secret.reader(), 'ERR_SECRET_CLOSED');
      await expectCode(() => reader.read(new Uint8Array(8)), 'ERR_SECRET_CLOSED');
      await expectCode(() => secret.equals(new Uint8Array(32)), 'ERR_SECRET_CLOSED');
      await expectCode(() => other.equals(secret), 'ERR_SECRET_CLOSED');
      other.close();
    },
  },
  {
    name: 'Symbol.dispose closes the secret',
    run(factory) {
      const before = factory.stats().inUse;
      const secret = factory.createRandom(16);
      secret[Symbol.dispose]();
      assert.equal(secret.closed, true);
      assert.equal(factory.stats().inUse, before);
    },
  },
  {
    name: 'reader copies the bytes in order and then returns 0',
    run(factory) {
      const secret = factory.createRandom(50);
      const expected = bytesOf(secret);
      const reader = secret.reader();
      const parts: Buffer[] = [];
      const chunk = new Uint8Array(7);
      for (let n = reader.read(chunk); n > 0; n = reader.read(chunk)) parts.push(Buffer.from(chunk.subarray(0, n)));
      assert.ok(Buffer.concat(parts).equals(expected));
      assert.equal(reader.read(chunk), 0);
      assert.equal(secret.reader().read(new Uint8Array(0)), 0);
      secret.close();
    },
  },
  {
    name: 'equals compares bytes and secrets correctly',
    run(factory) {
      const secret = factory.createRandom(32);
      const bytes = bytesOf(secret);
      assert.equal(secret.equals(bytes), true);
      assert.equal(secret.equals(secret), true);
      for (const index of [0, 15, 31]) {
        const changed = Buffer.from(bytes);
        changed[index] = (changed[index] as number) ^ 1;
        assert.equal(secret.equals(changed), false, `a difference at byte ${index}`);
      }
      assert.equal(secret.equals(bytes.subarray(0, 31)), false);
      assert.equal(secret.equals(Buffer.concat([bytes, Buffer.alloc(1)])), false);
      const twin = factory.new(Buffer.from(bytes));
      const stranger = factory.createRandom(32);
      assert.equal(secret.equals(twin), true);
      assert.equal(twin.equals(secret), true);
      assert.equal(secret.equals(stranger), false);
      for (const s of [secret, twin, stranger]) s.close();
    },
  },
  {
    name: 'util.inspect, String, template strings and JSON show a redacted form',
    run(factory) {
      const secret = factory.createRandom(32);
      const hex = bytesOf(secret).toString('hex');
      const forms = [
        inspect(secret),
        inspect(secret, { showHidden: true, depth: 10 }),
        inspect({ nested: [secret] }),
        String(secret),
        `${secret}`,
        JSON.stringify(secret),
        JSON.stringify({ key: secret }),
      ];
      for (const form of forms) {
        assert.match(form, /32 bytes/, `not redacted as expected: ${form}`);
        assert.ok(!form.includes(hex.slice(0, 8)), `the bytes leak: ${form}`);
        assert.ok(!/\b\d{1,3}(, \d{1,3}){7,}/.test(form), `a byte list leaks: ${form}`);
      }
      assert.deepEqual(Object.keys(secret), [], 'own enumerable properties may expose internals');
      secret.close();
    },
  },
  {
    name: 'stats count allocations, live secrets and locked bytes',
    run(factory) {
      const before = factory.stats();
      for (const key of ['allocated', 'inUse', 'lockedBytes'] as const) assert.equal(typeof before[key], 'number', key);
      const secrets = [factory.createRandom(32), factory.new(randomBytes(32))];
      const during = factory.stats();
      assert.equal(during.allocated, before.allocated + 2);
      assert.equal(during.inUse, before.inUse + 2);
      // Secrets encrypted at rest lock nothing until they are opened.
      if (factory.guarantees.lockedInRam && !factory.guarantees.encryptedAtRest) {
        assert.ok(during.lockedBytes > before.lockedBytes, 'lockedBytes did not grow');
      }
      for (const s of secrets) s.close();
      const after = factory.stats();
      assert.equal(after.inUse, before.inUse);
      assert.equal(after.lockedBytes, before.lockedBytes, 'locked bytes were not given back');
    },
  },
  {
    name: 'a failed call leaves other secrets intact',
    async run(factory) {
      const secret = factory.createRandom(32);
      const expected = bytesOf(secret);
      await expectCode(() => factory.createRandom(-1), 'ERR_INVALID_SIZE');
      await expectCode(() => factory.new('x' as never), 'ERR_INVALID_ARG_TYPE');
      await expectCode(() => secret.withBytes(null as never), 'ERR_INVALID_ARG_TYPE');
      assert.ok(bytesOf(secret).equals(expected));
      secret.close();
    },
  },
];

function detached(): Uint8Array {
  const view = new Uint8Array(16);
  structuredClone(view.buffer, { transfer: [view.buffer] });
  return view;
}

const NOT_BYTES: [string, () => unknown][] = [
  ['undefined', () => undefined],
  ['null', () => null],
  ['a string', () => 'password'],
  ['a number', () => 42],
  ['an array of numbers', () => [1, 2, 3]],
  ['an ArrayBuffer', () => new ArrayBuffer(8)],
  ['a DataView', () => new DataView(new ArrayBuffer(8))],
  ['a Uint16Array', () => new Uint16Array(4)],
  ['a plain object', () => ({ length: 4 })],
];

const BAD_SIZES: [string, unknown, string, BadInputCase['kind']][] = [
  ['undefined', undefined, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['a numeric string', '32', 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['a bigint', 32n, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['null', null, 'ERR_INVALID_ARG_TYPE', 'TypeError'],
  ['NaN', Number.NaN, 'ERR_INVALID_SIZE', 'RangeError'],
  ['Infinity', Number.POSITIVE_INFINITY, 'ERR_INVALID_SIZE', 'RangeError'],
  ['-Infinity', Number.NEGATIVE_INFINITY, 'ERR_INVALID_SIZE', 'RangeError'],
  ['a negative size', -1, 'ERR_INVALID_SIZE', 'RangeError'],
  ['zero', 0, 'ERR_INVALID_SIZE', 'RangeError'],
  ['a fractional size', 1.5, 'ERR_INVALID_SIZE', 'RangeError'],
  ['2^53', 2 ** 53, 'ERR_INVALID_SIZE', 'RangeError'],
  ['a huge size (8 GiB)', 2 ** 33, 'ERR_INVALID_SIZE', 'RangeError'],
  ['Number.MAX_VALUE', Number.MAX_VALUE, 'ERR_INVALID_SIZE', 'RangeError'],
];

const NOT_FUNCTIONS: [string, unknown][] = [
  ['undefined', undefined],
  ['a string', 'return 1'],
  ['a number', 7],
  ['an object', {}],
];

type AnyMethod = (...args: unknown[]) => unknown;
const method = (target: object, name: string): AnyMethod => (target as Record<string, AnyMethod>)[name] as AnyMethod;

/** The bad-input table: each case must fail with its code and leave every secret intact. */
export const BAD_INPUTS: readonly BadInputCase[] = [
  ...NOT_BYTES.map(
    ([label, value]): BadInputCase => ({
      name: `new(${label})`,
      code: 'ERR_INVALID_ARG_TYPE',
      kind: 'TypeError',
      call: (f) => f.new(value() as Uint8Array),
    }),
  ),
  { name: 'new(an empty Uint8Array)', code: 'ERR_INVALID_SIZE', kind: 'RangeError', call: (f) => f.new(new Uint8Array(0)) },
  { name: 'new(a detached Uint8Array)', code: 'ERR_INVALID_ARG_VALUE', kind: 'TypeError', call: (f) => f.new(detached()) },
  ...BAD_SIZES.map(
    ([label, value, code, kind]): BadInputCase => ({
      name: `createRandom(${label})`,
      code,
      kind,
      call: (f) => f.createRandom(value as number),
    }),
  ),
  ...NOT_FUNCTIONS.map(
    ([label, value]): BadInputCase => ({
      name: `withBytes(${label})`,
      code: 'ERR_INVALID_ARG_TYPE',
      kind: 'TypeError',
      call: (_f, { open }) => open.withBytes(value as never),
    }),
  ),
  { name: 'withBytesAsync(a string) rejects', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.withBytesAsync('x' as never) },
  { name: 'reader().read(a string)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.reader().read('x' as never) },
  { name: 'reader().read(null)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.reader().read(null as never) },
  { name: 'reader().read(a detached buffer)', code: 'ERR_INVALID_ARG_VALUE', kind: 'TypeError', call: (_f, { open }) => open.reader().read(detached()) },
  { name: 'equals(a string)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.equals('x' as never) },
  { name: 'equals(a number)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.equals(5 as never) },
  { name: 'equals(undefined)', code: 'ERR_INVALID_ARG_TYPE', kind: 'TypeError', call: (_f, { open }) => open.equals(undefined as never) },
  { name: 'equals(a detached buffer)', code: 'ERR_INVALID_ARG_VALUE', kind: 'TypeError', call: (_f, { open }) => open.equals(detached()) },
  { name: 'equals(a closed secret)', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { open, closed }) => open.equals(closed) },
  { name: 'withBytes on a closed secret', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { closed }) => closed.withBytes(() => 0) },
  { name: 'withBytesAsync on a closed secret rejects', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { closed }) => closed.withBytesAsync(() => 0) },
  { name: 'reader() on a closed secret', code: 'ERR_SECRET_CLOSED', kind: 'Error', call: (_f, { closed }) => closed.reader() },
  { name: 'withBytes with a wrong this', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (_f, { open }) => method(open, 'withBytes').call({}, () => 0) },
  { name: 'close with a wrong this', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (_f, { open }) => method(open, 'close').call(Object.create(null)) },
  { name: 'factory.new with a wrong this', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (f) => method(f, 'new').call({}, new Uint8Array(4)) },
  { name: 'factory.createRandom with this undefined', code: 'ERR_INVALID_THIS', kind: 'TypeError', call: (f) => method(f, 'createRandom').call(undefined, 4) },
];

/** The result of one check or bad input. */
export interface CheckResult {
  name: string;
  ok: boolean;
  error?: string;
}

/** Runs one bad-input case against fresh secrets and checks that it left them intact. */
export async function runBadInput(factory: SecretFactory, testCase: BadInputCase): Promise<void> {
  const open = factory.createRandom(32);
  const closed = factory.createRandom(32);
  closed.close();
  const expected = bytesOf(open);
  try {
    await expectCode(() => testCase.call(factory, { open, closed }), testCase.code, testCase.kind);
    assert.ok(bytesOf(open).equals(expected), 'the call changed another secret');
  } finally {
    open.close();
  }
}

/** Runs the contract suite and the bad-input table; never throws. */
export async function runContract(factory: SecretFactory): Promise<{ checks: CheckResult[]; badInputs: CheckResult[] }> {
  const run = async (name: string, fn: () => void | Promise<void>): Promise<CheckResult> => {
    try {
      await fn();
      return { name, ok: true };
    } catch (error) {
      return { name, ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
    }
  };
  const checks: CheckResult[] = [];
  for (const check of CONTRACT_CHECKS) checks.push(await run(check.name, () => check.run(factory)));
  const badInputs: CheckResult[] = [];
  for (const testCase of BAD_INPUTS) badInputs.push(await run(testCase.name, () => runBadInput(factory, testCase)));
  return { checks, badInputs };
}
