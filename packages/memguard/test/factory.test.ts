// The SecretFactory adapter, in process: options, manifest, counters, protection per phase, views
// revoked per access, purge, the canary, and the floor functions; both modes ('enclave', the
// default, and 'locked').
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GUARANTEE_FLAGS, type Secret, claimedFlags, createSecretFactory } from '@secure-memory/core';
import {
  MemguardSecretFactory,
  createFactory,
  keyInfo,
  lockedBufferStats,
  newBuffer,
  newBufferRandom,
  purge,
} from '@secure-memory/memguard';
import { runFloor, threadCpuNs, type FloorScript } from '@secure-memory/memguard/bench';
import { WARM_MAX, WARM_MAX_BYTES } from '../src/box-arena.js';
import { testHooks } from '../src/testing.js';
import { PAGE, code, locate, mappingsAt, peekSelf, pokeSelf } from './helpers.js';

afterEach(() => {
  purge();
});

describe('createFactory options', () => {
  it("defaults to mode 'enclave' and names itself memguard", () => {
    const factory = createFactory();
    expect(factory).toBeInstanceOf(MemguardSecretFactory);
    expect(factory.name).toBe('memguard');
    expect(factory.mode).toBe('enclave');
    expect(createFactory({ mode: 'locked', debug: false }).mode).toBe('locked');
    expect(createFactory({ mode: 'enclave', debug: true }).mode).toBe('enclave');
  });

  it('refuses other modes, bad option types, and ignores unknown keys', () => {
    expect(code(() => createFactory({ mode: 'sealed' as never }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => createFactory({ mode: 'LOCKED' as never }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => createFactory({ mode: 1 as never }))).toBe('ERR_INVALID_ARG_VALUE');
    expect(code(() => createFactory('locked' as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => createFactory([] as never))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => createFactory({ debug: 1 as never }))).toBe('ERR_INVALID_ARG_TYPE');
    expect(() => createFactory({ secretMemory: 'off' } as never)).not.toThrow();
    expect(() => createFactory({ mode: 'sealed' as never })).toThrow(TypeError);
  });

  it('loads through core by short name', async () => {
    const factory = await createSecretFactory({ backend: 'memguard', options: { mode: 'locked' } });
    expect(factory.name).toBe('memguard');
    expect((await createSecretFactory({ backend: 'memguard' })).guarantees.encryptedAtRest).toBe(true);
  });
});

const LOCKED_CLAIMS = [
  'wipesOnClose',
  'lockedInRam',
  'excludedFromCoreDumps',
  'noAccessWhenIdle',
  'guardPages',
  'canary',
  'notInheritedByFork',
  'constantTimeEquals',
];

describe('the manifest', () => {
  it.each([
    ['locked', LOCKED_CLAIMS],
    ['enclave', [...LOCKED_CLAIMS, 'encryptedAtRest']],
  ] as const)('%s: claims exactly what the issues list, and every flag is a boolean', (mode, claims) => {
    const { guarantees } = createFactory({ mode });
    expect(Object.keys(guarantees).sort()).toEqual([...GUARANTEE_FLAGS].sort());
    expect(claimedFlags(guarantees).sort()).toEqual([...claims].sort());
    expect(guarantees.hiddenFromKernel).toBe(false);
    expect(Object.isFrozen(guarantees)).toBe(true);
  });
});

describe('secrets', () => {
  it('are PROT_NONE when idle and PROT_READ during an access, in a locked, undumped, wiped-on-fork mapping between guard pages', () => {
    const factory = createFactory({ mode: 'locked' });
    const secret = factory.createRandom(32);
    const { address, size } = locate(secret);
    expect(size).toBe(32);
    expect((address + 32n) % BigInt(PAGE)).toBe(0n);
    const idle = mappingsAt(address)[0];
    expect(idle?.perms).toBe('---p');
    expect(idle?.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    secret.withBytes(() => {
      const [data, before, after] = mappingsAt(address, address - (address % BigInt(PAGE)) - 1n, address + 32n);
      expect(data?.perms).toBe('r--p');
      expect(before?.perms).toBe('---p');
      expect(after?.perms).toBe('---p');
    });
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    secret.close();
  });

  it.each(['enclave', 'locked'] as const)('%s: hand the same view to every access (locked: the data never moves; enclave: while the secret keeps its region warm); when the access ends its memory is PROT_NONE, not detached (also nested, async and thrown)', async (mode) => {
    const factory = createFactory({ mode });
    const secret = factory.new(Uint8Array.of(1, 2, 3, 4));
    const kept: Uint8Array[] = [];
    const addresses: bigint[] = [];
    secret.withBytes((outer) => {
      kept.push(outer);
      addresses.push(locate(secret).address);
      secret.withBytes((inner) => {
        expect(inner).toBe(outer); // nested accesses share one opening (core)
      });
      expect(outer.byteLength).toBe(4);
    });
    // Not detached (node:crypto would take a byteLength-0 view as an empty key): inaccessible.
    expect(kept[0]?.byteLength).toBe(4);
    expect(mappingsAt(addresses[0] as bigint)[0]?.perms).toBe('---p');
    expect(() =>
      secret.withBytes((view) => {
        kept.push(view);
        addresses.push(locate(secret).address);
        throw new Error('action failed');
      }),
    ).toThrow('action failed');
    expect(kept[1]?.byteLength).toBe(4);
    expect(mappingsAt(addresses[1] as bigint)[0]?.perms).toBe('---p');
    const sum = await secret.withBytesAsync(async (view) => {
      kept.push(view);
      addresses.push(locate(secret).address);
      await new Promise((resolve) => setTimeout(resolve, 1));
      return view.reduce((a, b) => a + b, 0);
    });
    expect(sum).toBe(10);
    expect(kept[2]?.byteLength).toBe(4);
    expect(mappingsAt(addresses[2] as bigint)[0]?.perms).toBe('---p');
    // One view serves every access: a view kept from an earlier access would read the same bytes
    // during a later one, and fault while idle, whether it is the same object or not.
    expect(new Set(addresses).size).toBe(1);
    expect(new Set(kept).size).toBe(1);
    // Enclave mode: the kept region holds nothing between accesses.
    if (mode === 'enclave') expect(peekSelf(addresses[0] as bigint)).toBe(0);
    expect(secret.equals(Uint8Array.of(1, 2, 3, 4))).toBe(true);
    secret.close();
  });

  it.each(['enclave', 'locked'] as const)('%s: new() wipes its source, and refuses a read-only view of this package as the source', (mode) => {
    const factory = createFactory({ mode });
    const source = Uint8Array.of(9, 9, 9);
    factory.new(source).close();
    expect([...source]).toEqual([0, 0, 0]);
    const frozen = newBufferRandom(16);
    const copy = Buffer.from(frozen.bytes());
    expect(code(() => factory.new(frozen.bytes()))).toBe('ERR_PROTECTION_FAILED');
    expect(frozen.equalTo(copy)).toBe(true);
    const other = factory.createRandom(8);
    other.withBytes((view) => {
      expect(code(() => factory.new(view))).toBe('ERR_PROTECTION_FAILED'); // read-only during access
    });
    other.close();
    frozen.destroy();
  });

  it('count locked bytes, allocations and mappings, and give them all back on close', () => {
    const factory = createFactory({ mode: 'locked' });
    const secrets = [factory.createRandom(32), factory.createRandom(PAGE), factory.createRandom(3000)];
    expect(factory.stats()).toMatchObject({
      allocated: 3,
      inUse: 3,
      buffers: 3,
      mappings: 9,
      lockedBytes: PAGE + 2 * PAGE + PAGE,
      mappedBytes: PAGE + 2 * PAGE + PAGE + 6 * PAGE,
      leaked: 0,
    });
    for (const s of secrets) s.close();
    expect(factory.stats()).toMatchObject({ allocated: 3, inUse: 0, buffers: 0, mappings: 0, lockedBytes: 0, mappedBytes: 0 });
  });

  it('a write just before the data during an access makes close() throw ERR_INTEGRITY; the memory is released', () => {
    const factory = createFactory({ mode: 'locked' });
    const secret = factory.createRandom(32);
    const { address } = locate(secret);
    secret.withBytes(() => pokeSelf(address - 1n, peekSelf(address - 1n) ^ 0xff));
    expect(code(() => secret.close())).toBe('ERR_INTEGRITY');
    expect(secret.closed).toBe(true);
    expect(factory.stats()).toMatchObject({ inUse: 0, buffers: 0, lockedBytes: 0 });
    expect(() => secret.close()).not.toThrow();
  });
});

describe('purge', () => {
  it('destroys every LockedBuffer and every secret of every factory (both modes); secrets then refuse access', () => {
    const a = createFactory({ mode: 'locked' });
    const b = createFactory();
    const secrets: Secret[] = [a.createRandom(32), b.new(Uint8Array.of(1, 2, 3))];
    const buffer = newBuffer(64);
    const view = buffer.bytes();
    const { address } = locate(buffer);
    purge();
    expect(buffer.isAlive).toBe(false);
    expect(view.byteLength).toBe(64); // not detached: wiped and PROT_NONE (a use faults)
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    expect(peekSelf(address)).toBe(0);
    expect(lockedBufferStats().buffers).toBe(0);
    expect(a.stats()).toMatchObject({ buffers: 0, lockedBytes: 0 });
    expect(b.stats()).toMatchObject({ buffers: 0, lockedBytes: 0 });
    for (const secret of secrets) {
      expect(code(() => secret.withBytes(() => 0))).toBe('ERR_SECRET_CLOSED');
      expect(() => secret.close()).not.toThrow();
    }
  });

  it.each(['enclave', 'locked'] as const)('%s: during an async access, the view is made inaccessible at once, the access ends without faulting', async (mode) => {
    const factory = createFactory({ mode });
    const secret = factory.createRandom(32);
    const lengths = await secret.withBytesAsync(async (view) => {
      const before = view.byteLength;
      purge();
      await Promise.resolve();
      return [before, view.byteLength];
    });
    expect(lengths).toEqual([32, 32]);
    expect(code(() => secret.withBytes(() => 0))).toBe('ERR_SECRET_CLOSED');
  });

  it('destroys everything, then throws ERR_INTEGRITY when a canary was damaged', () => {
    const damaged = newBuffer(32);
    const healthy = newBuffer(32);
    const { address } = locate(damaged);
    pokeSelf(address - 2n, peekSelf(address - 2n) ^ 0x10);
    expect(code(() => purge())).toBe('ERR_INTEGRITY');
    expect(damaged.isAlive).toBe(false);
    expect(healthy.isAlive).toBe(false);
    expect(() => purge()).not.toThrow();
  });
});

describe('native floor', () => {
  const access = {
    prologue: [{ call: 'mmap', pages: 2, prot: 'readwrite' }, { call: 'mprotect', page: 0, pages: 2, prot: 'none' }],
    body: [
      { call: 'mprotect', page: 0, pages: 2, prot: 'read' },
      { call: 'read', page: 0, pages: 2 },
      { call: 'mprotect', page: 0, pages: 2, prot: 'none' },
    ],
    epilogue: [{ call: 'munmap' }],
  } as const satisfies FloorScript;
  const alloc: FloorScript = {
    body: [
      { call: 'mmap', pages: 3, prot: 'none' },
      { call: 'mprotect', page: 1, pages: 1, prot: 'readwrite' },
      { call: 'write', offset: 4096, bytes: 32 },
      { call: 'madvise', page: 0, pages: 3, advice: 'dontdump' },
      { call: 'wipe', offset: 4096, bytes: 32 },
      { call: 'munmap' },
    ],
  };

  it('runs a script in C and times its body in wall and thread CPU nanoseconds', () => {
    for (const script of [access, alloc]) {
      const t = runFloor(script, 50);
      expect(Number.isFinite(t.wallNs) && t.wallNs > 0).toBe(true);
      expect(Number.isFinite(t.cpuNs) && t.cpuNs > 0).toBe(true);
    }
    // OpenSSL in place, and back out of place with the tag checked (an open of pages never sealed fails).
    const crypt: FloorScript = {
      prologue: [{ call: 'mmap', pages: 4, prot: 'readwrite' }, { call: 'write', offset: 0, bytes: 4096 }, { call: 'seal', page: 0, pages: 2 }],
      body: [{ call: 'open', page: 0, pages: 2, to: 2 }],
      epilogue: [{ call: 'munmap' }],
    };
    expect(runFloor(crypt, 5).cpuNs).toBeGreaterThan(0);
    const forged: FloorScript = { ...crypt, prologue: [{ call: 'mmap', pages: 4, prot: 'readwrite' }, { call: 'seal', page: 0, pages: 2 }, { call: 'write', offset: 0, bytes: 1 }] };
    expect(code(() => runFloor(forged, 1))).toBe('ERR_PROTECTION_FAILED');
    // The same on bytes (a small box), into other pages, and a wipe of more than a page.
    const small: FloorScript = {
      prologue: [{ call: 'mmap', pages: 4, prot: 'readwrite' }, { call: 'write', offset: 100, bytes: 32 }, { call: 'sealBytes', offset: 100, bytes: 32 }],
      body: [{ call: 'openBytes', offset: 100, bytes: 32, to: 3 * PAGE - 32 }],
      epilogue: [{ call: 'munmap' }],
    };
    expect(runFloor(small, 5).cpuNs).toBeGreaterThan(0);
    const sealTo: FloorScript = {
      prologue: [{ call: 'mmap', pages: 4, prot: 'readwrite' }],
      body: [{ call: 'sealTo', page: 0, pages: 2, to: 2 }, { call: 'wipe', offset: 0, bytes: 2 * PAGE }],
      epilogue: [{ call: 'munmap' }],
    };
    expect(runFloor(sealTo, 5).cpuNs).toBeGreaterThan(0);
    const forgedSmall: FloorScript = { ...small, prologue: [...(small.prologue ?? []), { call: 'write', offset: 100, bytes: 1 }] };
    expect(code(() => runFloor(forgedSmall, 1))).toBe('ERR_PROTECTION_FAILED');
    const before = threadCpuNs();
    runFloor(alloc, 200);
    expect(threadCpuNs()).toBeGreaterThan(before);
  });

  it('refuses bad iteration counts and scripts that leave their mapping, before any call', () => {
    for (const n of [0, -1, 1.5, 1e8, Number.NaN]) expect(code(() => runFloor(access, n))).toBe('ERR_OUT_OF_RANGE');
    expect(code(() => runFloor(access, '10' as never))).toBe('ERR_INVALID_ARG_TYPE');
    const bad: FloorScript[] = [
      { body: [{ call: 'read', page: 0, pages: 1 }] }, // nothing mapped
      { prologue: access.prologue, body: [{ call: 'read', page: 1, pages: 2 }], epilogue: access.epilogue }, // past the end
      { prologue: access.prologue, body: [{ call: 'munmap' }] }, // the body unmaps
      { prologue: access.prologue, body: access.body }, // never unmapped
      { body: [{ call: 'mmap', pages: 1, prot: 'none' }, { call: 'write', offset: 4090, bytes: 32 }, { call: 'munmap' }] },
      { body: [{ call: 'mmap', pages: 1, prot: 'none' }, { call: 'openBytes', offset: 0, bytes: 32, to: 4080 }, { call: 'munmap' }] },
      { body: [{ call: 'mmap', pages: 2, prot: 'none' }, { call: 'sealTo', page: 0, pages: 2, to: 1 }, { call: 'munmap' }] },
      { body: [{ call: 'mmap', pages: 2, prot: 'none' }, { call: 'wipe', offset: 1, bytes: 2 * 4096 }, { call: 'munmap' }] },
      { body: [{ call: 'syscall' } as never] },
    ];
    for (const script of bad) expect(code(() => runFloor(script, 1))).toBe('ERR_INVALID_ARG_TYPE');
    expect(code(() => runFloor({ body: [{ call: 'mmap', pages: 0, prot: 'none' }, { call: 'munmap' }] }, 1))).toBe('ERR_OUT_OF_RANGE');
  });
});

describe("enclave mode: a secret is an Enclave at rest, opened into a pooled region per access", () => {
  it('costs no locked memory at rest but the wiped regions its few most recently read secrets keep: only ciphertext on the heap; one locked region during an access', () => {
    const factory = createFactory();
    const secrets = [factory.createRandom(32), factory.new(new Uint8Array(100).fill(7)), factory.createRandom(3000)];
    expect(factory.stats()).toMatchObject({
      allocated: 3,
      inUse: 3,
      lockedBytes: 0,
      buffers: 0,
      mappings: 0,
      ciphertextBytes: 32 + 100 + 3000 + 3 * 28,
    });
    secrets[1]?.withBytes((bytes) => {
      expect([...bytes.subarray(0, 3)]).toEqual([7, 7, 7]);
      expect(factory.stats()).toMatchObject({ lockedBytes: PAGE, buffers: 1, mappings: 3 });
    });
    // The region stays, wiped and PROT_NONE, for the next access of the same secret.
    expect(factory.stats()).toMatchObject({ lockedBytes: PAGE, buffers: 1 });
    secrets[1]?.close();
    expect(factory.stats()).toMatchObject({ lockedBytes: 0, buffers: 0 });
    for (const s of secrets) s.close();
    expect(factory.stats()).toMatchObject({ inUse: 0, ciphertextBytes: 0, lockedBytes: 0 });
  });

  it(`keeps the regions of at most ${WARM_MAX} idle secrets; one pushed out gives its region back, and a view kept from it faults until V8 releases it, never showing another secret`, async () => {
    const factory = createFactory();
    const first = factory.new(new Uint8Array(32).fill(0x11));
    let keptView: Uint8Array | undefined;
    let keptAddress = 0n;
    first.withBytes((view) => {
      keptView = view;
      keptAddress = locate(first).address;
    });
    const others = Array.from({ length: WARM_MAX + 3 }, (_, i) => factory.new(new Uint8Array(32).fill(i + 1)));
    for (const other of others) other.withBytes((view) => view[0]);
    // The regions kept: the last WARM_MAX secrets read; `first` was pushed out first.
    expect(factory.stats()).toMatchObject({ lockedBytes: WARM_MAX * PAGE, buffers: WARM_MAX });
    // Its region is a tombstone while the view lives: wiped and PROT_NONE (the view faults), not reused.
    expect(mappingsAt(keptAddress)[0]?.perms).toBe('---p');
    expect(peekSelf(keptAddress)).toBe(0);
    let again = 0n;
    first.withBytes((view) => {
      // (not `expect(view).not.toBe(keptView)`: vitest compares the two arrays' contents, which reads the tombstone)
      expect(view === keptView).toBe(false);
      expect(view[0]).toBe(0x11);
      again = locate(first).address;
    });
    expect(again).not.toBe(keptAddress);
    expect(keptView?.byteLength).toBe(32);
    for (const s of [first, ...others]) s.close();
    expect(factory.stats()).toMatchObject({ lockedBytes: 0, buffers: 0, inUse: 0 });
    keptView = undefined;
    expect(await testHooks.settleViews()).toBe(0);
  });

  it('a larger secret than a kept region may be is given back at the end of each access', () => {
    const factory = createFactory();
    const big = factory.createRandom(WARM_MAX_BYTES + 1);
    big.withBytes((view) => view[0]);
    expect(factory.stats()).toMatchObject({ lockedBytes: 0, buffers: 0 });
    big.close();
  });

  it('during an access the plaintext is in a read-only, locked, undumped, wiped-on-fork mapping between guard pages; after it, that memory is wiped', () => {
    const factory = createFactory();
    const secret = factory.new(new Uint8Array(32).fill(0xa5));
    let address = 0n;
    secret.withBytes((bytes) => {
      ({ address } = locate(secret));
      expect(peekSelf(address)).toBe(0xa5);
      expect(bytes[0]).toBe(0xa5);
      expect((address + 32n) % BigInt(PAGE)).toBe(0n);
      const [data, before, after] = mappingsAt(address, address - (address % BigInt(PAGE)) - 1n, address + 32n);
      expect(data?.perms).toBe('r--p');
      expect(data?.flags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
      expect(before?.perms).toBe('---p');
      expect(after?.perms).toBe('---p');
    });
    // The region went back to the pool, its data wiped.
    for (let i = 0n; i < 32n; i += 1n) expect(peekSelf(address + i)).toBe(0);
    secret.close();
  });

  it('a probe asking where an idle secret is anchors a region: PROT_NONE and empty when idle, where the plaintext appears during access', () => {
    const factory = createFactory();
    const secret = factory.new(new Uint8Array(32).fill(0x5a));
    const { address, size } = locate(secret);
    expect(size).toBe(32);
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    expect(peekSelf(address)).toBe(0);
    expect(factory.stats()).toMatchObject({ lockedBytes: PAGE, buffers: 1 });
    secret.withBytes(() => {
      expect(locate(secret).address).toBe(address);
      expect(peekSelf(address)).toBe(0x5a);
      expect(mappingsAt(address)[0]?.perms).toBe('r--p');
    });
    expect(mappingsAt(address)[0]?.perms).toBe('---p');
    expect(peekSelf(address + 31n)).toBe(0);
    expect(locate(secret).address).toBe(address);
    secret.close();
    expect(factory.stats()).toMatchObject({ lockedBytes: 0, buffers: 0 });
  });

  it.each(['anchored', 'pooled'])('%s: a write just before the data during an access makes close() throw ERR_INTEGRITY', (how) => {
    const factory = createFactory();
    const secret = factory.createRandom(32);
    if (how === 'anchored') locate(secret);
    secret.withBytes(() => {
      const { address } = locate(secret);
      pokeSelf(address - 1n, peekSelf(address - 1n) ^ 0xff);
    });
    expect(secret.withBytes((bytes) => bytes.byteLength)).toBe(32); // the data itself is intact
    expect(code(() => secret.close())).toBe('ERR_INTEGRITY');
    expect(secret.closed).toBe(true);
    expect(factory.stats()).toMatchObject({ inUse: 0, buffers: 0, lockedBytes: 0 });
  });

  it('secrets read back the same across re-keying and across event-loop turns (the derived key is forgotten and derived again)', async () => {
    const factory = createFactory();
    const bytes = Uint8Array.from({ length: 64 }, (_, i) => i);
    const secret = factory.new(Uint8Array.from(bytes));
    const before = keyInfo();
    testHooks.rekeyNow();
    expect(secret.equals(bytes)).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(keyInfo().derived).toBe(false);
    expect(secret.equals(bytes)).toBe(true);
    expect(keyInfo().rekeys).toBeGreaterThan(before.rekeys);
    expect(keyInfo().derivations).toBeGreaterThan(before.derivations);
    secret.close();
  });

  it('fromFd reads straight into a pooled region, seals it and wipes the region', () => {
    const factory = createFactory();
    const dir = mkdtempSync(join(tmpdir(), 'memguard-fromfd-'));
    try {
      const path = join(dir, 'key');
      const key = Uint8Array.from({ length: 48 }, (_, i) => 255 - i);
      writeFileSync(path, key);
      const fd = openSync(path, 'r');
      const secret = factory.fromFd(fd, 48);
      closeSync(fd);
      expect(factory.stats()).toMatchObject({ lockedBytes: 0, ciphertextBytes: 48 + 28 });
      expect(secret.equals(key)).toBe(true);
      secret.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
