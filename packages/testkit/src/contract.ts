/**
 * The contract suite, in process: every method and error code of DESIGN's contract, written once
 * and run both by vitest (`describeConformance`) and by `runConformance` (in a child process).
 * Each check takes a fresh factory and throws when the backend breaks the contract. The bad-input
 * table is in `bad-input.ts`; {@link runContract} runs both. Somewhat over 400 lines: one table of
 * 21 checks, in the order they run, with the two helpers they share.
 * @module
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { GUARANTEE_FLAGS, type Secret, type SecretFactory } from '@secure-memory/core';
import { REGION_PROBE } from '@secure-memory/core/backend';
import { BAD_INPUTS, runBadInput } from './bad-input.js';
import { bytesOf, expectCode } from './expect-code.js';
import { findMapping, readMappings } from './proc.js';

/** One named check of the contract. */
export interface ContractCheck {
  name: string;
  run(factory: SecretFactory): void | Promise<void>;
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

/** Keeps the view of one more access past its action, then asserts that the secret is idle again (see {@link assertIdle}). */
function assertIdleAfterAccess(factory: SecretFactory, secret: Secret): void {
  let kept: Uint8Array | undefined;
  secret.withBytes((b) => {
    kept = b;
  });
  assertIdle(factory, secret, kept);
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
      assertIdleAfterAccess(factory, secret);
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
      assertIdleAfterAccess(factory, secret);
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

/** The result of one check or bad input. */
export interface CheckResult {
  name: string;
  ok: boolean;
  error?: string;
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
