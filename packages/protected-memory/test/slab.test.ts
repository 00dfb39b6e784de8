// Slab packing, in process: size classes, page reference counts seen in /proc/self/smaps, wiping of
// freed slots, unmapping of empty slabs, and the per-slot canary.
import type { Secret } from '@secure-memory/core';
import { REGION_PROBE } from '@secure-memory/core/backend';
import { describe, expect, it } from 'vitest';
import { CANARY_BYTES, SIZE_CLASSES, SLOT_STRIDES, createFactory } from '../src/index.js';
import { PROT_READ, PROT_WRITE, libc } from '../src/libc.js';
import { readSelf } from '../../testkit/test/self.js';
import { releasedAfterEach } from '../../testkit/test/tracked.js';
import { PAGE, collectGarbage, mappingAt, unmapped } from './helpers.js';

// A secret whose canary a test damaged throws at close: that test checked it.
const track = releasedAfterEach((secret: Secret) => secret.close(), { damaged: true });

const locate = (secret: Secret): { address: bigint; size: number } =>
  (secret[REGION_PROBE as never] as () => { address: bigint; size: number }).call(secret);
const pageOf = (address: bigint): bigint => address - (address % BigInt(PAGE));
const bytes = (size: number, seed: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff);

/** Reads memory through /proc/self/mem, as a debugger would (anonymous memory only; PROT_NONE does not stop it). */
const readProcMem = (address: bigint, size: number): Buffer => readSelf(address, size, 0x55);

/** Raw bytes at `address`, copied (the page must be readable now). */
const raw = (address: bigint, size: number): Buffer => Buffer.from(libc().view(address, size));

/** Flips one byte at `address`, making its page writable for the moment (as a native bug would, or the testkit's probe). */
function corrupt(address: bigint): void {
  const lib = libc();
  expect(lib.mprotect(pageOf(address), PAGE, PROT_READ | PROT_WRITE)).toBe(0);
  const view = lib.view(address, 1);
  view[0] = (view[0] as number) ^ 0xff;
}

describe('size classes', () => {
  it('are an 8-byte canary plus 16 to 2040 bytes of data', () => {
    expect(CANARY_BYTES).toBe(8);
    expect(SIZE_CLASSES).toEqual([16, 32, 64, 128, 256, 504, 1016, 2040]);
    expect(SLOT_STRIDES).toEqual(SIZE_CLASSES.map((size) => size + CANARY_BYTES));
  });

  it.each(SIZE_CLASSES.map((size, i) => [size, SLOT_STRIDES[i] as number]))(
    'class %i: whole slots fill a page (canary and data inside it); the next slot starts the next page of the slab',
    (size, stride) => {
      const factory = createFactory({ secretMemory: 'off', packing: 'slab' });
      const perPage = Math.floor(PAGE / stride);
      // The first slab is one page; the second has two: fill its first page and take one more slot.
      const secrets = Array.from({ length: 2 * perPage + 1 }, () => track(factory.createRandom(size)));
      const page = pageOf(locate(secrets[perPage] as Secret).address);
      secrets.slice(perPage, 2 * perPage).forEach((secret, i) => {
        const { address } = locate(secret);
        expect(address).toBe(page + BigInt(i * stride + CANARY_BYTES));
        expect(pageOf(address + BigInt(size - 1))).toBe(page);
      });
      expect(locate(secrets[2 * perPage] as Secret).address).toBe(page + BigInt(PAGE + CANARY_BYTES));
      expect(factory.stats()).toMatchObject({ slabs: 2, slots: 2 * perPage + 1 });
    },
  );
});

describe.each(['off', 'require'] as const)("packing 'slab', secretMemory '%s'", (secretMemory) => {
  const secretMem = secretMemory === 'require';
  const perms = (p: string): string => `${p}${secretMem ? 's' : 'p'}`;
  const factoryOf = () => createFactory({ secretMemory, packing: 'slab' });

  it('round-trips every size class, their edges and the fallback to an own mapping', async () => {
    const factory = factoryOf();
    const sizes = [1, 16, 17, 32, 33, 64, 65, 128, 256, 257, 504, 505, 1016, 1017, 2040, 2041, 3000, PAGE, PAGE + 1, 3 * PAGE + 7];
    const made = sizes.map((size, seed) => {
      const source = bytes(size, seed);
      const secret = track(factory.new(source));
      expect(source.every((b) => b === 0)).toBe(true);
      return secret;
    });
    sizes.forEach((size, seed) => {
      const secret = made[seed] as Secret;
      expect(secret.size).toBe(size);
      expect(secret.equals(bytes(size, seed))).toBe(true);
      expect(secret.withBytes((view) => view.byteLength)).toBe(size);
      expect(locate(secret)).toMatchObject({ size });
      expect(locate(secret).address % 8n).toBe(0n);
    });
    const small = sizes.filter((s) => s <= 2040).length;
    const large = sizes.length - small;
    const stats = factory.stats();
    expect(stats).toMatchObject({ inUse: sizes.length, slots: small, slabs: 8, mappings: 8 + large, pendingWipes: 0 });
    // Each class's first slab is one page; each large secret has its own, with room for its canary.
    const largePages = sizes.filter((s) => s > 2040).reduce((n, s) => n + Math.ceil((s + CANARY_BYTES) / PAGE), 0);
    expect(stats.lockedBytes).toBe((8 + largePages) * PAGE);
    for (const secret of made) secret.close();
    // Their views were handed to actions: the wiped slots stay taken until the views are collected.
    expect(factory.stats()).toMatchObject({ inUse: 0, slots: 0, retiredSlots: small });
    await collectGarbage();
    expect(factory.stats()).toMatchObject({ inUse: 0, slots: 0, retiredSlots: 0, slabs: 0, mappings: 0, lockedBytes: 0, mappedBytes: 0 });
  });

  it('packs 32-byte secrets 40 bytes apart in one locked page, then opens a slab twice as large', () => {
    const factory = factoryOf();
    const perPage = Math.floor(PAGE / 40);
    const secrets = Array.from({ length: perPage }, () => track(factory.createRandom(32)));
    const addresses = secrets.map((s) => locate(s).address);
    expect(new Set(addresses.map(pageOf)).size).toBe(1);
    for (const [i, address] of addresses.entries()) expect(address - (addresses[0] as bigint)).toBe(BigInt(40 * i));
    expect(factory.stats()).toMatchObject({ slots: perPage, slabs: 1, mappings: 1, lockedBytes: PAGE });
    const next = track(factory.createRandom(32));
    expect(pageOf(locate(next).address)).not.toBe(pageOf(addresses[0] as bigint));
    expect(factory.stats()).toMatchObject({ slots: perPage + 1, slabs: 2, mappings: 2, lockedBytes: 3 * PAGE });
    const slab = mappingAt(locate(next).address);
    expect(slab.perms).toBe(perms('---'));
    expect(slab.flags).toEqual(expect.arrayContaining(['lo', 'dd', secretMem ? 'dc' : 'wf']));
    if (secretMem) expect(slab.path).toMatch(/^\/secretmem/);
  });

  it('slabs of a class double from one page up to 64 KiB, so mappings grow with the log of the count, then linearly by 64 KiB', () => {
    const factory = factoryOf();
    const perPage = Math.floor(PAGE / 24); // the 16-byte class
    const pages = [1, 2, 4, 8, 16, 16].map((p) => Math.min(p, Math.max(1, (64 * 1024) / PAGE)));
    const total = pages.reduce((a, b) => a + b, 0);
    const count = (total - (pages.at(-1) as number)) * perPage + 1;
    for (let i = 0; i < count; i++) track(factory.createRandom(16));
    expect(factory.stats()).toMatchObject({ slots: count, slabs: pages.length, mappings: pages.length, mappedBytes: total * PAGE, lockedBytes: total * PAGE });
  });

  it('counts accesses per page: the page is readable while either of two page-mates is accessed, PROT_NONE after both end', async () => {
    const factory = factoryOf();
    const a = track(factory.createRandom(32));
    const b = track(factory.createRandom(32));
    const elsewhere = track(factory.createRandom(100)); // another class, another slab
    const [pa, pb, pe] = [a, b, elsewhere].map((s) => locate(s).address) as [bigint, bigint, bigint];
    expect(pageOf(pa)).toBe(pageOf(pb));
    expect(pageOf(pe)).not.toBe(pageOf(pa));
    const permsAt = (address: bigint): string => mappingAt(address).perms;
    expect(permsAt(pa)).toBe(perms('---'));

    a.withBytes(() => {
      expect(permsAt(pa)).toBe(perms('r--'));
      b.withBytes(() => expect(permsAt(pb)).toBe(perms('r--')));
      expect(permsAt(pa)).toBe(perms('r--')); // b ended, a is still open
      expect(permsAt(pe)).toBe(perms('---')); // a page of another slab stays closed
    });
    expect(permsAt(pa)).toBe(perms('---'));

    // Overlapping, not nested: a opens, b opens, a ends, b ends.
    let endA: () => void = () => {};
    const pendingA = a.withBytesAsync(() => new Promise<void>((resolve) => (endA = resolve)));
    let endB: () => void = () => {};
    const pendingB = b.withBytesAsync(() => new Promise<void>((resolve) => (endB = resolve)));
    expect(permsAt(pa)).toBe(perms('r--'));
    endA();
    await pendingA;
    expect(permsAt(pb)).toBe(perms('r--'));
    endB();
    await pendingB;
    expect(permsAt(pa)).toBe(perms('---'));
  });

  it('during an access, the other secrets on the page are readable too (the documented trade-off)', () => {
    const factory = factoryOf();
    const a = track(factory.new(bytes(32, 1)));
    const b = track(factory.new(bytes(32, 2)));
    const pb = locate(b).address;
    const seen = a.withBytes(() => raw(pb, 32));
    expect(b.equals(seen)).toBe(true);
    seen.fill(0);
  });

  it('a freed slot is zeroed at once, canary included, while its page-mates live on', () => {
    const factory = factoryOf();
    const a = track(factory.new(bytes(32, 1)));
    const b = factory.new(bytes(32, 2));
    const slot = locate(b).address - BigInt(CANARY_BYTES);
    const before = a.withBytes(() => raw(slot, 40));
    expect(before.subarray(CANARY_BYTES).equals(Buffer.from(bytes(32, 2)))).toBe(true); // the control
    before.fill(0);
    b.close();
    expect(a.withBytes(() => raw(slot, 40)).every((byte) => byte === 0)).toBe(true);
    expect(factory.stats()).toMatchObject({ inUse: 1, slots: 1, slabs: 1 });
    expect(a.equals(bytes(32, 1))).toBe(true);
  });

  it('an empty slab is unmapped and its locked bytes returned; the next secret maps a fresh one', () => {
    const factory = factoryOf();
    const a = factory.createRandom(32);
    const b = factory.createRandom(32);
    const address = locate(a).address;
    expect(factory.stats()).toMatchObject({ slabs: 1, mappings: 1, lockedBytes: PAGE });
    a.close();
    expect(unmapped(address)).toBe(false);
    b.close();
    // The emptied slab is parked until the end of the turn, and unmapped before stats are read
    // (test/slab-park.test.ts): stats never count it.
    expect(factory.stats()).toMatchObject({ inUse: 0, slots: 0, slabs: 0, mappings: 0, lockedBytes: 0, mappedBytes: 0 });
    expect(unmapped(address)).toBe(true);
    track(factory.createRandom(32));
    expect(factory.stats()).toMatchObject({ slots: 1, slabs: 1, mappings: 1, lockedBytes: PAGE });
  });

  it('a damaged canary makes close() throw ERR_INTEGRITY after freeing; the neighbours survive and the slot is reused cleanly', async () => {
    const factory = factoryOf();
    const [a, b, c] = [1, 2, 3].map((seed) => track(factory.new(bytes(32, seed)))) as [Secret, Secret, Secret];
    const pb = locate(b).address;
    b.withBytes(() => corrupt(pb - 1n)); // the byte just before b's data
    expect(() => b.close()).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
    expect(b.closed).toBe(true);
    expect(() => b.close()).not.toThrow();
    expect(factory.stats()).toMatchObject({ inUse: 2, slots: 2, slabs: 1 });
    expect(a.equals(bytes(32, 1))).toBe(true);
    expect(c.equals(bytes(32, 3))).toBe(true);
    expect(a.withBytes(() => raw(pb - BigInt(CANARY_BYTES), 40)).every((byte) => byte === 0)).toBe(true);
    await collectGarbage(); // b's view was handed to an action: its slot is reused once that view is collected
    const d = factory.new(bytes(32, 4));
    expect(locate(d).address).toBe(pb); // the freed slot, with a fresh canary
    expect(d.equals(bytes(32, 4))).toBe(true);
    expect(() => d.close()).not.toThrow();
  });

  it("an overrun off the end of one secret's data hits the next slot's canary, caught when that one closes", async () => {
    const factory = factoryOf();
    const a = track(factory.new(bytes(32, 1)));
    const b = factory.new(bytes(32, 2));
    const pa = locate(a).address;
    a.withBytes(() => corrupt(pa + 32n));
    expect(() => b.close()).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
    expect(() => a.close()).not.toThrow();
    await collectGarbage();
    expect(factory.stats()).toMatchObject({ inUse: 0, mappings: 0, lockedBytes: 0 });
  });

  it('a large secret in its own mapping has a canary too', async () => {
    const factory = factoryOf();
    const big = factory.new(bytes(3000, 5));
    const where = locate(big).address;
    expect(where % BigInt(PAGE)).toBe(BigInt(CANARY_BYTES));
    big.withBytes(() => corrupt(where - 1n));
    expect(() => big.close()).toThrow(expect.objectContaining({ code: 'ERR_INTEGRITY' }));
    expect(unmapped(where)).toBe(false); // kept, wiped and inaccessible, while the view handed to the action may be reachable
    await collectGarbage();
    expect(unmapped(where)).toBe(true);
    expect(factory.stats()).toMatchObject({ inUse: 0, mappings: 0, lockedBytes: 0 });
  });

  it('factories keep separate slabs', () => {
    const one = factoryOf();
    const two = factoryOf();
    const a = track(one.createRandom(32));
    const b = track(two.createRandom(32));
    expect(pageOf(locate(a).address)).not.toBe(pageOf(locate(b).address));
    expect(one.stats()).toMatchObject({ slots: 1, slabs: 1 });
    expect(two.stats()).toMatchObject({ slots: 1, slabs: 1 });
  });

  it('location() throws after close', () => {
    const secret = factoryOf().createRandom(32);
    secret.close();
    expect(() => locate(secret)).toThrow(expect.objectContaining({ code: 'ERR_SECRET_CLOSED' }));
  });
});

describe("packing 'slab', anonymous memory seen through /proc/self/mem", () => {
  it('a closed secret reads back as zeros while its slab is still mapped', async () => {
    const factory = createFactory({ secretMemory: 'off', packing: 'slab' });
    const keep = track(factory.createRandom(32));
    const secret = factory.new(new Uint8Array(32).fill(0xaa));
    const address = locate(secret).address;
    expect(readProcMem(address, 32).every((b) => b === 0xaa)).toBe(true); // the control: idle bytes are there
    secret.close();
    expect(unmapped(address)).toBe(false);
    expect(readProcMem(address - BigInt(CANARY_BYTES), 40).every((b) => b === 0)).toBe(true);
    keep.close();
    // Parked until the end of the turn (test/slab-park.test.ts), then unmapped.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    expect(unmapped(address)).toBe(true);
  });
});
