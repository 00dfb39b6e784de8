/** Typed errors at the public edge: every bad argument, every tampering, every use after close. */
import { spawnSync } from 'node:child_process';
import { inspect } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { Secret, SecretFactory } from '@secure-memory/core';
import { createFactory } from '@secure-memory/protected-memory';
import { unprivileged } from '@secure-memory/testkit';
import { describe, expect, it } from 'vitest';
import { FILL_IN_PLACE, aead, hkdf, hmac, type AeadAlgorithm } from '../src/index.ts';

const factory = createFactory();

function codeOf(action: () => unknown): { code: unknown; name: string } {
  try {
    action();
  } catch (error) {
    return { code: (error as { code?: unknown }).code, name: (error as Error).name };
  }
  return { code: 'no error', name: '' };
}

const ALGORITHMS: AeadAlgorithm[] = ['aes-256-gcm', 'chacha20-poly1305', 'xchacha20-poly1305'];

describe('aead()', () => {
  it('refuses bad algorithms and keys with typed errors', () => {
    using key = factory.createRandom(32);
    using short = factory.createRandom(16);
    expect(codeOf(() => aead(7 as never, key))).toEqual({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(codeOf(() => aead('aes-128-gcm' as never, key))).toEqual({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
    expect(codeOf(() => aead('toString' as never, key))).toEqual({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
    expect(codeOf(() => aead('aes-256-gcm', new Uint8Array(32) as never))).toEqual({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(codeOf(() => aead('aes-256-gcm', null as never))).toEqual({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(codeOf(() => aead('aes-256-gcm', short))).toEqual({ code: 'ERR_INVALID_SIZE', name: 'RangeError' });
    const closed = factory.createRandom(32);
    closed.close();
    expect(codeOf(() => aead('aes-256-gcm', closed)).code).toBe('ERR_SECRET_CLOSED');
  });

  it('refuses a Secret whose withBytes hands anything but a view of its bytes', () => {
    const liar = { size: 32, withBytes: (action: (b: Uint8Array) => unknown) => action(new Uint8Array(16)) } as unknown as Secret;
    expect(codeOf(() => aead('xchacha20-poly1305', liar))).toEqual({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
    expect(codeOf(() => hmac('sha256', liar, new Uint8Array(1))).code).toBe('ERR_INVALID_ARG_VALUE');
  });
});

describe.each(ALGORITHMS)('%s', (algorithm) => {
  it('checks the arguments of seal, open, wrap and unwrap', () => {
    using key = factory.createRandom(32);
    using cipher = aead(algorithm, key);
    const detached = new Uint8Array(8);
    structuredClone(detached.buffer, { transfer: [detached.buffer] });
    expect(codeOf(() => cipher.seal('text' as never))).toEqual({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' });
    expect(codeOf(() => cipher.seal(detached))).toEqual({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
    expect(codeOf(() => cipher.seal(new Uint8Array(1), 'aad' as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => cipher.seal(new Uint8Array(1), { aad: 'x' as never })).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => cipher.open([1, 2, 3] as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => cipher.wrap(new Uint8Array(32) as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    const box = cipher.wrap(key);
    expect(codeOf(() => cipher.unwrap(box, {} as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => cipher.unwrap(cipher.seal(new Uint8Array(0)), factory)).code).toBe('ERR_INVALID_ARG_VALUE');
    const closed = factory.createRandom(32);
    closed.close();
    expect(codeOf(() => cipher.wrap(closed)).code).toBe('ERR_SECRET_CLOSED');
  });

  it('throws ERR_INTEGRITY for any flipped bit, a truncation, a wrong aad or a wrong key, and keeps nothing', () => {
    using key = factory.createRandom(32);
    using other = factory.createRandom(32);
    using cipher = aead(algorithm, key);
    using wrongKey = aead(algorithm, other);
    const aad = new Uint8Array([1, 2, 3]);
    using dataKey = factory.createRandom(32);
    const box = cipher.wrap(dataKey, { aad });
    const inUse = factory.stats().inUse;
    for (let i = 0; i < box.byteLength; i += 1) {
      const tampered = Uint8Array.from(box);
      tampered[i] = (tampered[i] as number) ^ 0x01;
      expect(codeOf(() => cipher.open(tampered, { aad })).code).toBe('ERR_INTEGRITY');
      expect(codeOf(() => cipher.unwrap(tampered, factory, { aad })).code).toBe('ERR_INTEGRITY');
    }
    expect(codeOf(() => cipher.open(box.subarray(0, box.byteLength - 1), { aad })).code).toBe('ERR_INTEGRITY');
    expect(codeOf(() => cipher.open(box.subarray(0, cipher.overhead - 1), { aad })).code).toBe('ERR_INTEGRITY');
    expect(codeOf(() => cipher.open(box, { aad: new Uint8Array([1, 2]) })).code).toBe('ERR_INTEGRITY');
    expect(codeOf(() => cipher.open(box)).code).toBe('ERR_INTEGRITY');
    expect(codeOf(() => wrongKey.unwrap(box, factory, { aad })).code).toBe('ERR_INTEGRITY');
    expect(factory.stats().inUse).toBe(inUse);
    using good = cipher.unwrap(box, factory, { aad });
    expect(good.equals(dataKey)).toBe(true);
  });

  it('is disposable: after close every use throws ERR_SECRET_CLOSED, close is idempotent, and the string forms are redacted', () => {
    using key = factory.createRandom(32);
    const cipher = aead(algorithm, key);
    const box = cipher.seal(new Uint8Array(4));
    expect(inspect(cipher)).toBe(`Aead(${algorithm})`);
    expect(JSON.stringify({ cipher })).toBe(`{"cipher":"Aead(${algorithm})"}`);
    expect(`${cipher}`).toBe(`Aead(${algorithm})`);
    cipher[Symbol.dispose]();
    cipher.close();
    expect(cipher.closed).toBe(true);
    expect(String(cipher)).toBe(`Aead(${algorithm}, closed)`);
    for (const use of [() => cipher.seal(new Uint8Array(1)), () => cipher.open(box), () => cipher.wrap(key), () => cipher.unwrap(box, factory)]) {
      expect(codeOf(use).code).toBe('ERR_SECRET_CLOSED');
    }
    expect(codeOf(() => Reflect.apply(cipher.seal, {}, [new Uint8Array(1)])).code).toBe('ERR_INVALID_THIS');
  });
});

describe('hmac() and hkdf()', () => {
  it('refuse bad arguments with typed errors', () => {
    using key = factory.createRandom(32);
    expect(codeOf(() => hmac('md5' as never, key, new Uint8Array(1)))).toEqual({ code: 'ERR_INVALID_ARG_VALUE', name: 'TypeError' });
    expect(codeOf(() => hmac(undefined as never, key, new Uint8Array(1))).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => hmac('sha256', Buffer.alloc(32) as never, new Uint8Array(1))).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => hmac('sha256', key, 'data' as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    const good = { length: 32 };
    expect(codeOf(() => hkdf('sha1' as never, key, good, factory)).code).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => hkdf('sha256', {} as never, good, factory)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => hkdf('sha256', key, null as never, factory)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => hkdf('sha256', key, { length: '32' } as never, factory)).code).toBe('ERR_INVALID_ARG_TYPE');
    for (const length of [0, -1, 1.5, Number.NaN, 255 * 32 + 1]) {
      expect(codeOf(() => hkdf('sha256', key, { length }, factory))).toEqual({ code: 'ERR_INVALID_SIZE', name: 'RangeError' });
    }
    expect(codeOf(() => hkdf('sha512', key, { length: 255 * 64 + 1 }, factory)).code).toBe('ERR_INVALID_SIZE');
    expect(codeOf(() => hkdf('sha256', key, { length: 32, salt: 'salt' as never }, factory)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => hkdf('sha256', key, { length: 32, info: 1 as never }, factory)).code).toBe('ERR_INVALID_ARG_TYPE');
    expect(codeOf(() => hkdf('sha256', key, good, {} as never)).code).toBe('ERR_INVALID_ARG_TYPE');
    const closed = factory.createRandom(32);
    closed.close();
    expect(codeOf(() => hmac('sha256', closed, new Uint8Array(1))).code).toBe('ERR_SECRET_CLOSED');
    expect(codeOf(() => hkdf('sha256', closed, good, factory)).code).toBe('ERR_SECRET_CLOSED');
  });
});

describe('the in-place hook', () => {
  it('unwrap and hkdf write straight into the memory a factory offers through FILL_IN_PLACE, and a refused fill keeps nothing', () => {
    const filled: Uint8Array[] = [];
    const inPlace = {
      name: 'in-place',
      new: () => {
        throw new Error('new() must not be called when the factory can be filled in place');
      },
      [FILL_IN_PLACE](size: number, fill: (writable: Uint8Array) => void): Secret {
        const region = new Uint8Array(size).fill(0xee);
        fill(region);
        filled.push(region);
        return factory.new(Uint8Array.from(region));
      },
    } as unknown as SecretFactory;
    using key = factory.createRandom(32);
    using cipher = aead('aes-256-gcm', key);
    using dataKey = factory.createRandom(32);
    const box = cipher.wrap(dataKey);
    using unwrapped = cipher.unwrap(box, inPlace);
    expect(unwrapped.equals(dataKey)).toBe(true);
    expect(dataKey.equals(filled[0] as Uint8Array)).toBe(true);
    const tampered = Uint8Array.from(box);
    tampered[20] = (tampered[20] as number) ^ 1;
    expect(codeOf(() => cipher.unwrap(tampered, inPlace)).code).toBe('ERR_INTEGRITY');
    expect(filled).toHaveLength(1);
    using derived = hkdf('sha256', key, { length: 40 }, inPlace);
    expect(derived.size).toBe(40);
    expect(derived.equals(filled[1] as Uint8Array)).toBe(true);
  });
});

describe('a process that may lock no memory', () => {
  it('gets ERR_MEMLOCK_LIMIT, with requested and limit, from every call that needs locked memory', () => {
    const script = fileURLToPath(new URL('fixtures/memlock-child.mjs', import.meta.url));
    const [command, ...args] = unprivileged([process.execPath, script], { memlock: 0 });
    const run = spawnSync(command as string, args, { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const results = JSON.parse(run.stdout) as Record<string, { code: string; requested: number; limit: number; syscall: string }>;
    for (const name of ['aead', 'hmac', 'hkdf']) {
      expect(results[name]).toEqual({ code: 'ERR_MEMLOCK_LIMIT', requested: results[name]?.requested, limit: 0, syscall: 'mlock' });
      expect(results[name]?.requested).toBeGreaterThan(0);
    }
  });
});

describe('the addon', () => {
  it('refuses a handle of the wrong kind or a plain object with an exception, never a crash', async () => {
    const { addon } = await import('../src/native.ts');
    const native = addon();
    const scratch = native.scratchNew(16);
    if (!('handle' in scratch)) throw new Error('no scratch memory');
    using key = factory.createRandom(32);
    const state = key.withBytes((view) => native.keyNew(2, view));
    if ('errno' in state) throw new Error('no key state');
    expect(() => native.keyFree(scratch.handle)).toThrow(TypeError);
    expect(() => native.seal({} as never, new Uint8Array(1), undefined, new Uint8Array(41))).toThrow(TypeError);
    expect(() => native.scratchFree(scratch.buffer, state)).toThrow(TypeError);
    native.scratchFree(scratch.buffer, scratch.handle);
    native.scratchFree(scratch.buffer, scratch.handle); // idempotent
    expect(scratch.buffer.byteLength).toBe(0); // detached
    native.keyFree(state);
    expect(native.seal(state, new Uint8Array(1), undefined, new Uint8Array(41))).toBe(-1);
  });
});
