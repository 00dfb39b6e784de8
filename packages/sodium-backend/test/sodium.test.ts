import { randomBytes } from 'node:crypto';
import { type Secret, isSecureMemoryError } from '@secure-memory/core';
import { REGION_PROBE, type RegionLocation } from '@secure-memory/core/backend';
import { SodiumSecretFactory, createFactory } from '@secure-memory/sodium';
import { describe, expect, it } from 'vitest';
import { mapReserve } from '@secure-memory/core/backend';
import { lockedLength, mappedLength, unprotectedStart } from '../src/layout.ts';
import { thrownBy } from '../../testkit/test/thrown.ts';
import { mappingsAt } from './helpers.ts';

const PAGE = 4096n;
const locate = (secret: Secret): RegionLocation =>
  (secret as unknown as Record<symbol, () => RegionLocation>)[REGION_PROBE]!.call(secret);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('createFactory options', () => {
  it('defaults to lock "require" and names itself "sodium"', () => {
    const factory = createFactory();
    expect(factory).toBeInstanceOf(SodiumSecretFactory);
    expect(factory.name).toBe('sodium');
    expect(factory.lock).toBe('require');
    expect(createFactory({}).lock).toBe('require');
    expect(new SodiumSecretFactory({ lock: 'best-effort' }).lock).toBe('best-effort');
  });

  it.each([
    ['a number', 1, 'ERR_INVALID_ARG_TYPE'],
    ['a string', 'require', 'ERR_INVALID_ARG_TYPE'],
    ['null', null, 'ERR_INVALID_ARG_TYPE'],
    ['an array', [], 'ERR_INVALID_ARG_TYPE'],
    ['an unknown lock', { lock: 'always' }, 'ERR_INVALID_ARG_VALUE'],
    ['a boolean lock', { lock: true }, 'ERR_INVALID_ARG_VALUE'],
    ['a null lock', { lock: null }, 'ERR_INVALID_ARG_VALUE'],
  ])('rejects %s with a TypeError %s', (_label, options, code) => {
    const thrown = thrownBy(() => createFactory(options as never));
    expect(thrown).toBeInstanceOf(TypeError);
    expect((thrown as { code?: string }).code).toBe(code);
  });

  it('ignores keys it does not know (core\'s "auto" passes one options object to every backend)', () => {
    expect(createFactory({ secretMemory: 'off' } as never).lock).toBe('require');
  });
});

describe('manifest', () => {
  it("claims libsodium's guarantees, and lockedInRam only with lock 'require'", () => {
    const claims = {
      wipesOnClose: true,
      excludedFromCoreDumps: true,
      noAccessWhenIdle: true,
      guardPages: true,
      canary: true,
      constantTimeEquals: true,
      viewsRevoked: false,
      encryptedAtRest: false,
      notInheritedByFork: false,
      hiddenFromKernel: false,
    };
    expect(createFactory().guarantees).toEqual({ ...claims, lockedInRam: true });
    expect(createFactory({ lock: 'best-effort' }).guarantees).toEqual({ ...claims, lockedInRam: false });
    expect(Object.isFrozen(createFactory().guarantees)).toBe(true);
  });
});

describe('secrets', () => {
  const factory = createFactory();

  it('round-trips bytes given to new() and zero-fills the source', () => {
    const bytes = randomBytes(100);
    const source = Buffer.from(bytes);
    const secret = factory.new(source);
    expect(source.every((b) => b === 0)).toBe(true);
    expect(secret.size).toBe(100);
    expect(secret.withBytes((view) => Buffer.from(view).equals(bytes))).toBe(true);
    expect(secret.equals(bytes)).toBe(true);
    expect(secret.equals(randomBytes(100))).toBe(false);
    secret.close();
  });

  it.each([1, 31, 32, 4079, 4080, 4081, 4096, 5000, 70_000])('createRandom(%i) gives that many bytes, right before a page boundary', (size) => {
    const secret = factory.createRandom(size);
    const { address, size: located } = locate(secret);
    expect(located).toBe(size);
    expect((address + BigInt(size)) % PAGE).toBe(0n);
    expect(secret.withBytes((view) => view.byteLength)).toBe(size);
    const copy = Buffer.alloc(size);
    expect(secret.reader().read(copy)).toBe(size);
    expect(copy.every((b) => b === 0)).toBe(false);
    copy.fill(0);
    secret.close();
  });

  it('keeps the secrets apart: closing one leaves the others readable', () => {
    const sources = [randomBytes(32), randomBytes(64), randomBytes(32)];
    const secrets = sources.map((s) => factory.new(Buffer.from(s)));
    secrets[1]!.close();
    expect(secrets[0]!.equals(sources[0]!)).toBe(true);
    expect(secrets[2]!.equals(sources[2]!)).toBe(true);
    expect(codeOf(() => secrets[1]!.withBytes(() => 0))).toBe('ERR_SECRET_CLOSED');
    for (const s of secrets) s.close();
  });

  it('counts locked bytes in whole pages and four mappings per live secret', () => {
    const own = createFactory();
    const before = own.stats();
    expect(before).toMatchObject({ allocated: 0, inUse: 0, lockedBytes: 0, mappings: 0, unlocked: 0, integrityFailures: 0 });
    const small = own.createRandom(32);
    const large = own.createRandom(5000);
    expect(own.stats()).toMatchObject({ allocated: 2, inUse: 2, lockedBytes: 4096 + 8192, mappings: 8 });
    small.close();
    expect(own.stats()).toMatchObject({ allocated: 2, inUse: 1, lockedBytes: 8192, mappings: 4 });
    large.close();
    large.close();
    expect(own.stats()).toMatchObject({ allocated: 2, inUse: 0, lockedBytes: 0, mappings: 0 });
  });
});

describe('the region in /proc/self/smaps', () => {
  const factory = createFactory();

  it('is PROT_NONE when idle, read-only during access, locked and not dumped, between no-access guard pages', () => {
    const secret = factory.createRandom(32);
    const { address, size } = locate(secret);
    const start = unprotectedStart(address, 4096);
    const [leading, idle, trailing] = mappingsAt(start - 1n, address, address + BigInt(size));
    expect(idle?.perms).toBe('---p');
    expect(idle?.flags).toEqual(expect.arrayContaining(['lo', 'dd']));
    expect(leading?.perms).toBe('---p');
    expect(trailing?.perms).toBe('---p');
    expect(trailing?.start).toBe(address + BigInt(size));
    const during = secret.withBytes(() => mappingsAt(address)[0]);
    expect(during?.perms).toBe('r--p');
    expect(during?.flags).toEqual(expect.arrayContaining(['lo', 'dd']));
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    secret.close();
  });

  it('is page-rounded: canary plus data, in whole pages, plus three more pages', () => {
    expect(lockedLength(32, 4096)).toBe(4096);
    expect(lockedLength(4080, 4096)).toBe(4096);
    expect(lockedLength(4081, 4096)).toBe(8192);
    expect(mappedLength(32, 4096)).toBe(4 * 4096);
    const secret = factory.createRandom(4081);
    const { address } = locate(secret);
    const start = unprotectedStart(address, 4096);
    const [region] = mappingsAt(address);
    expect(region?.start).toBe(start);
    expect(region && region.end - region.start).toBe(8192n);
    secret.close();
  });
});

describe('errors', () => {
  it('carry codes, and messages without argument values', () => {
    const factory = createFactory();
    expect(isSecureMemoryError(thrownBy(() => factory.createRandom(2 ** 31)), 'ERR_INVALID_SIZE')).toBe(true);
    expect(codeOf(() => factory.new('secret-password' as never))).toBe('ERR_INVALID_ARG_TYPE');
    try {
      factory.new('secret-password' as never);
    } catch (error) {
      expect((error as Error).message).not.toContain('secret-password');
    }
  });

  it('leaves a reserve of mappings to the rest of the process', () => {
    // core's, shared by every backend and thread of the process: an eighth of vm.max_map_count, at least 1024
    expect(mapReserve(65_530)).toBe(8191);
    expect(mapReserve(1_000)).toBe(1024);
    expect(mapReserve(1_048_576)).toBe(131_072);
  });
});
