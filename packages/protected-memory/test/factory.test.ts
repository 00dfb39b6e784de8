import { GUARANTEE_FLAGS, type Secret, claimedFlags } from '@secure-memory/core';
import { REGION_PROBE } from '@secure-memory/core/backend';
import { describe, expect, it, vi } from 'vitest';
import {
  ProtectedMemorySecretFactory,
  createFactory,
  hardenProcess,
  secretMemoryAvailable,
} from '../src/index.js';
import { thrownBy } from '../../testkit/test/thrown.js';
import { releasedAfterEach } from '../../testkit/test/tracked.js';
import { PAGE } from './helpers.js';

const track = releasedAfterEach((secret: Secret) => secret.close());

/** The stats of a new factory in packing 'page' (packing 'slab' adds its own counters). */
const EMPTY_STATS = {
  allocated: 0,
  inUse: 0,
  lockedBytes: 0,
  mappings: 0,
  mappedBytes: 0,
  unlockedMappings: 0,
  deferredUnmaps: 0,
  retiredMappings: 0,
};

describe('options', () => {
  it.each([null, 'off', 42, [], () => {}])('rejects options that are not an object (%#)', (options) => {
    expect(() => createFactory(options as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it.each([
    { secretMemory: 'yes' },
    { secretMemory: null },
    { secretMemory: true },
    { lock: 'always' },
    { lock: 1 },
    { secretMemory: 'require', lock: 'best-effort' },
    { packing: 'slabs' },
    { packing: 'PAGE' },
    { packing: null },
    { packing: 4096 },
    { packing: 'slab', lock: 'sometimes' },
  ])('rejects %o with ERR_INVALID_ARG_VALUE', (options) => {
    const error = thrownBy(() => createFactory(options as never));
    expect(error).toBeInstanceOf(TypeError);
    expect(error).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('ignores keys it does not know (core passes one options object to every backend)', () => {
    expect(createFactory({ secretMemory: 'off', somethingElse: 1 } as never).mode).toBe('anonymous');
  });

  it('hardenProcess validates its options before changing anything', () => {
    expect(() => hardenProcess('no' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => hardenProcess({ dumpable: 0 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('modes and manifests', () => {
  const base = ['wipesOnClose', 'excludedFromCoreDumps', 'noAccessWhenIdle', 'notInheritedByFork', 'constantTimeEquals'];

  it('memfd_secret is available on this kernel (the CI machine has it)', () => {
    expect(secretMemoryAvailable()).toBe(true);
    expect(secretMemoryAvailable()).toBe(true);
  });

  it("secretMemory 'off': anonymous memory, locked, not hidden from the kernel", () => {
    const factory = createFactory({ secretMemory: 'off' });
    expect(factory).toBeInstanceOf(ProtectedMemorySecretFactory);
    expect(factory.name).toBe('protected-memory');
    expect(factory.mode).toBe('anonymous');
    expect(factory.lock).toBe('require');
    expect(claimedFlags(factory.guarantees).sort()).toEqual([...base, 'lockedInRam'].sort());
  });

  it("secretMemory 'require': secret memory, and the manifest adds hiddenFromKernel", () => {
    const factory = createFactory({ secretMemory: 'require' });
    expect(factory.mode).toBe('secret-memory');
    expect(claimedFlags(factory.guarantees).sort()).toEqual([...base, 'lockedInRam', 'hiddenFromKernel'].sort());
  });

  it("the default ('auto', lock 'require') uses secret memory where the kernel has it", () => {
    expect(createFactory().mode).toBe('secret-memory');
    expect(createFactory({ secretMemory: 'auto' }).guarantees.hiddenFromKernel).toBe(true);
  });

  it("lock 'best-effort' does not claim lockedInRam, and 'auto' then maps anonymous memory", () => {
    const factory = createFactory({ lock: 'best-effort' });
    expect(factory.mode).toBe('anonymous');
    expect(factory.guarantees.lockedInRam).toBe(false);
    expect(factory.guarantees.hiddenFromKernel).toBe(false);
  });

  it("packing defaults to 'page', with the manifests above", () => {
    expect(createFactory({ secretMemory: 'off' }).packing).toBe('page');
    expect(createFactory({ secretMemory: 'off', packing: 'page' }).guarantees).toEqual(createFactory({ secretMemory: 'off' }).guarantees);
  });

  it("packing 'slab' claims canary and gives up noAccessWhenIdle (page-mates are readable during an access)", () => {
    const off = createFactory({ secretMemory: 'off', packing: 'slab' });
    expect(off.packing).toBe('slab');
    expect(off.mode).toBe('anonymous');
    const slabBase = [...base.filter((f) => f !== 'noAccessWhenIdle'), 'canary'];
    expect(claimedFlags(off.guarantees).sort()).toEqual([...slabBase, 'lockedInRam'].sort());
    const secret = createFactory({ secretMemory: 'require', packing: 'slab' });
    expect(secret.mode).toBe('secret-memory');
    expect(claimedFlags(secret.guarantees).sort()).toEqual([...slabBase, 'lockedInRam', 'hiddenFromKernel'].sort());
    const bestEffort = createFactory({ lock: 'best-effort', packing: 'slab' });
    expect(claimedFlags(bestEffort.guarantees).sort()).toEqual(slabBase.sort());
  });

  it("stats in packing 'slab' add slots, slabs and pendingWipes", () => {
    expect(createFactory({ secretMemory: 'off', packing: 'slab' }).stats()).toEqual({
      ...EMPTY_STATS,
      slots: 0,
      slabs: 0,
      pendingWipes: 0,
      retiredSlots: 0,
    });
  });

  it('the manifest is complete and frozen', () => {
    const { guarantees } = createFactory({ secretMemory: 'off' });
    expect(Object.keys(guarantees).sort()).toEqual([...GUARANTEE_FLAGS].sort());
    expect(Object.isFrozen(guarantees)).toBe(true);
  });
});

describe.each(['off', 'require'] as const)("secretMemory '%s'", (secretMemory) => {
  it('round-trips bytes and zero-fills the source', () => {
    const factory = createFactory({ secretMemory });
    const source = Uint8Array.from({ length: 48 }, (_, i) => i + 1);
    const expected = source.slice();
    const secret = track(factory.new(source));
    expect(source.every((b) => b === 0)).toBe(true);
    expect(secret.size).toBe(48);
    expect(secret.withBytes((bytes) => Array.from(bytes))).toEqual(Array.from(expected));
    expect(secret.equals(expected)).toBe(true);
    expect(secret.equals(new Uint8Array(48))).toBe(false);
    expect(String(secret)).toBe('Secret(protected-memory, 48 bytes)');
  });

  it('createRandom fills secrets that differ and survive many accesses', async () => {
    const factory = createFactory({ secretMemory });
    const a = track(factory.createRandom(32));
    const b = track(factory.createRandom(32));
    expect(a.equals(b)).toBe(false);
    const first = a.withBytes((bytes) => Buffer.from(bytes).toString('hex'));
    for (let i = 0; i < 50; i++) a.withBytes((bytes) => bytes[0]);
    await a.withBytesAsync(async (bytes) => a.withBytes((again) => expect(again).toBe(bytes)));
    expect(a.withBytes((bytes) => Buffer.from(bytes).toString('hex'))).toBe(first);
  });

  it('holds sizes across page boundaries', () => {
    const factory = createFactory({ secretMemory });
    for (const size of [1, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE + 7]) {
      const source = Uint8Array.from({ length: size }, (_, i) => (i * 31 + 7) & 0xff);
      const copy = source.slice();
      const secret = track(factory.new(source));
      expect(secret.equals(copy)).toBe(true);
    }
  });

  it('stats count mappings, mapped and locked bytes, page-rounded, and return to zero on close', () => {
    const factory = createFactory({ secretMemory });
    expect(factory.stats()).toEqual(EMPTY_STATS);
    const small = factory.createRandom(32);
    const large = factory.createRandom(PAGE + 1);
    expect(factory.stats()).toMatchObject({
      allocated: 2,
      inUse: 2,
      lockedBytes: 3 * PAGE,
      mappings: 2,
      mappedBytes: 3 * PAGE,
    });
    small.close();
    expect(factory.stats()).toMatchObject({ inUse: 1, lockedBytes: 2 * PAGE, mappings: 1, mappedBytes: 2 * PAGE });
    large.close();
    large.close();
    expect(factory.stats()).toMatchObject({ allocated: 2, inUse: 0, lockedBytes: 0, mappings: 0, mappedBytes: 0 });
  });

  it('factories keep separate counters', () => {
    const one = createFactory({ secretMemory });
    const two = createFactory({ secretMemory });
    track(one.createRandom(8));
    expect(one.stats().mappings).toBe(1);
    expect(two.stats().mappings).toBe(0);
  });

  it('location() is the page-aligned start of the mapping, then throws after close', () => {
    const factory = createFactory({ secretMemory });
    const secret = factory.createRandom(40);
    const where = secret[REGION_PROBE as never] as () => { address: bigint; size: number };
    const location = where.call(secret);
    expect(location.size).toBe(40);
    expect(location.address % BigInt(PAGE)).toBe(0n);
    secret.close();
    expect(() => where.call(secret)).toThrow(expect.objectContaining({ code: 'ERR_SECRET_CLOSED' }));
  });

  it('a failed argument check leaves the factory and its secrets intact', () => {
    const factory = createFactory({ secretMemory });
    const kept = track(factory.new(Uint8Array.of(9, 8, 7)));
    expect(() => factory.createRandom(0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_SIZE' }));
    expect(() => factory.createRandom(2 ** 31)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_SIZE' }));
    expect(() => factory.new('key' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(factory.stats()).toMatchObject({ inUse: 1, mappings: 1, mappedBytes: PAGE });
    expect(kept.equals(Uint8Array.of(9, 8, 7))).toBe(true);
  });
});

describe('off Linux', () => {
  it.each(['darwin', 'win32', 'freebsd'])('on %s: nothing is claimed, createFactory and hardenProcess throw ERR_UNSUPPORTED_PLATFORM', async (platform) => {
    const real = Object.getOwnPropertyDescriptor(process, 'platform') as PropertyDescriptor;
    Object.defineProperty(process, 'platform', { ...real, value: platform });
    try {
      vi.resetModules();
      const fresh = await import('../src/index.js');
      expect(() => fresh.createFactory()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED_PLATFORM' }));
      expect(() => fresh.createFactory({ secretMemory: 'off', lock: 'best-effort' })).toThrow(
        expect.objectContaining({ code: 'ERR_UNSUPPORTED_PLATFORM' }),
      );
      expect(() => fresh.hardenProcess()).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED_PLATFORM' }));
      expect(fresh.secretMemoryAvailable()).toBe(false);
      // Bad options are still reported as such first.
      expect(() => fresh.createFactory({ lock: 'maybe' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    } finally {
      Object.defineProperty(process, 'platform', real);
      vi.resetModules();
    }
  });
});
