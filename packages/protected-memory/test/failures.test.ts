// Failure paths, with system calls made to fail on purpose: every refused allocation releases what it
// took, and leaves the other secrets intact.
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { readSelf } from '../../testkit/test/self.js';
import { PAGE } from './helpers.js';

/** Runs `use` with a descriptor that yields two bytes (0xaa 0xaa), then ends; closes it after. */
function withShortDescriptor<T>(use: (fd: number) => T): T {
  const path = join(mkdtempSync(join(tmpdir(), 'pm-short-')), 'two-bytes');
  writeFileSync(path, Uint8Array.of(0xaa, 0xaa));
  const fd = openSync(path, 'r');
  rmSync(path);
  try {
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

interface Fault {
  name: string;
  errno: number;
  /** Calls of `name` to let through before failing once. */
  after: number;
}

const faults = vi.hoisted(() => ({
  pending: [] as Fault[],
  calls: [] as Array<{ name: string; args: unknown[]; failed: boolean; result?: unknown }>,
}));

vi.mock('../src/libc.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/libc.js')>();
  let wrapped: import('../src/libc.js').Libc | undefined;
  return {
    ...real,
    libc() {
      if (wrapped !== undefined) return wrapped;
      const lib = real.libc();
      let forced: number | undefined;
      const intercept =
        (name: keyof typeof lib) =>
        (...args: unknown[]): unknown => {
          const index = faults.pending.findIndex((f) => f.name === name);
          const fault = faults.pending[index];
          if (fault !== undefined && fault.after === 0) {
            faults.pending.splice(index, 1);
            faults.calls.push({ name, args, failed: true });
            forced = fault.errno;
            return name === 'mmap' ? lib.mapFailed : -1;
          }
          if (fault !== undefined) fault.after -= 1;
          forced = undefined;
          const result = (lib[name] as (...a: unknown[]) => unknown)(...args);
          faults.calls.push({ name, args, failed: false, result });
          return result;
        };
      const names = ['mmap', 'munmap', 'mprotect', 'mlock', 'munlock', 'madvise', 'ftruncate', 'close', 'memfdSecret', 'view'] as const;
      wrapped = {
        ...lib,
        ...Object.fromEntries(names.map((name) => [name, intercept(name)])),
        errno: () => forced ?? lib.errno(),
      } as typeof lib;
      return wrapped;
    },
  };
});

const { createFactory } = await import('../src/index.js');
const { MADV_DONTDUMP, MADV_DONTFORK, MADV_WIPEONFORK, PROT_NONE, PROT_READ, PROT_WRITE } = await import('../src/libc.js');

const EINVAL = 22;
const ENOMEM = 12;
const EAGAIN = 11;
const EMFILE = 24;

function failNext(name: string, errno: number, after = 0): void {
  faults.pending.push({ name, errno, after });
}
const calls = (name: string) => faults.calls.filter((c) => c.name === name);
/**
 * Closes `secret`, the factory's last one, and reads the stats (an emptied slab is kept to the end
 * of the turn, or until stats are read); returns every call made so far as `name:third argument`.
 */
/** A new factory; the calls its creation made are forgotten. */
function factoryWithoutCalls(options: Parameters<typeof createFactory>[0]): ReturnType<typeof createFactory> {
  const factory = createFactory(options);
  faults.calls.length = 0;
  return factory;
}

function closeLast(factory: { stats(): unknown }, secret: { close(): void }): string[] {
  secret.close();
  factory.stats();
  return faults.calls.map((c) => `${c.name}:${String(c.args[2] ?? '')}`);
}
function catchError(action: () => unknown): Record<string, unknown> {
  try {
    action();
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected a throw');
}

beforeEach(() => {
  faults.pending.length = 0;
  faults.calls.length = 0;
});

/** Reads anonymous memory through /proc/self/mem (PROT_NONE does not stop it). */
const readMem = (address: bigint, size: number): Buffer => readSelf(address, size, 1);

describe.each(['off', 'require'] as const)("secretMemory '%s'", (secretMemory) => {
  const secret = secretMemory === 'require';

  function setup() {
    const factory = createFactory({ secretMemory });
    const keep = factory.new(Uint8Array.of(1, 2, 3, 4));
    faults.calls.length = 0;
    return { factory, keep };
  }

  /** The mapping the last allocation made was unmapped with the same address and length. */
  function expectUnmappedWhatItMapped(): void {
    const mmaps = calls('mmap').filter((c) => !c.failed);
    expect(mmaps).toHaveLength(1);
    const munmaps = calls('munmap');
    expect(munmaps).toHaveLength(1);
    expect(munmaps[0]?.args).toEqual([mmaps[0]?.result, mmaps[0]?.args[0]]); // (address, length)
  }

  function expectIntact(factory: ReturnType<typeof createFactory>, keep: { equals(b: Uint8Array): boolean }): void {
    expect(factory.stats()).toMatchObject({ inUse: 1, mappings: 1, mappedBytes: PAGE, lockedBytes: PAGE, deferredUnmaps: 0 });
    expect(keep.equals(Uint8Array.of(1, 2, 3, 4))).toBe(true);
  }

  it('advises MADV_DONTDUMP, then the fork advice that applies to this memory', () => {
    const { factory } = setup();
    factory.createRandom(8).close();
    expect(calls('madvise').map((c) => c.args[2])).toEqual([MADV_DONTDUMP, secret ? MADV_DONTFORK : MADV_WIPEONFORK]);
    expect(calls('mlock')).toHaveLength(secret ? 0 : 1); // secret memory is locked by the kernel at mmap
    expect(calls('munlock')).toHaveLength(0); // munmap unlocks (test/memlock-churn.test.ts)
    expect(calls('munmap')).toHaveLength(1);
  });

  it('a failing mmap throws ERR_ALLOCATION_FAILED with errno and syscall', () => {
    const { factory, keep } = setup();
    failNext('mmap', EINVAL);
    expect(catchError(() => factory.createRandom(32))).toMatchObject({ code: 'ERR_ALLOCATION_FAILED', errno: EINVAL, syscall: 'mmap' });
    expect(calls('munmap')).toHaveLength(0);
    if (secret) expect(calls('close')).toHaveLength(1); // the descriptor is closed all the same
    expectIntact(factory, keep);
  });

  it.each([
    [MADV_DONTDUMP, 0],
    [secretMemory === 'require' ? MADV_DONTFORK : MADV_WIPEONFORK, 1],
  ])('a failing madvise(%i) throws ERR_PROTECTION_FAILED and unmaps', (_advice, after) => {
    const { factory, keep } = setup();
    failNext('madvise', EINVAL, after);
    const source = Uint8Array.of(5, 6, 7);
    expect(catchError(() => factory.new(source))).toMatchObject({ code: 'ERR_PROTECTION_FAILED', errno: EINVAL, syscall: 'madvise' });
    expect(Array.from(source)).toEqual([5, 6, 7]); // the source is left as it was
    expectUnmappedWhatItMapped();
    expectIntact(factory, keep);
  });

  it('a failing mprotect after the fill throws ERR_PROTECTION_FAILED and unmaps', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL);
    expect(catchError(() => factory.createRandom(32))).toMatchObject({ code: 'ERR_PROTECTION_FAILED', syscall: 'mprotect' });
    expectUnmappedWhatItMapped();
    expectIntact(factory, keep);
  });

  it('a fill that throws unmaps', () => {
    const { factory, keep } = setup();
    // fromFd fills from a descriptor that ends after 2 of 8 bytes: a partial fill, then the failure.
    expect(withShortDescriptor((fd) => catchError(() => factory.fromFd(fd, 8)))).toMatchObject({ code: 'ERR_INVALID_SIZE' });
    expectUnmappedWhatItMapped();
    expectIntact(factory, keep);
  });

  it('a failing mprotect at access throws ERR_PROTECTION_FAILED; the secret stays usable', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL);
    expect(catchError(() => keep.withBytes((b) => b[0]))).toMatchObject({ code: 'ERR_PROTECTION_FAILED', errno: EINVAL });
    expectIntact(factory, keep);
  });

  it('a munmap the kernel refuses is retried later; until then stats count it', () => {
    const { factory, keep } = setup();
    const doomed = factory.createRandom(32);
    failNext('munmap', ENOMEM);
    doomed.close(); // no throw: the bytes are wiped; only the release of the mapping waits
    // Anonymous memory is unlocked once its munmap is refused (secret memory stays locked by the kernel).
    expect(calls('munlock')).toHaveLength(secret ? 0 : 1);
    expect(factory.stats()).toMatchObject({ inUse: 1, mappings: 2, deferredUnmaps: 1, lockedBytes: secret ? 2 * PAGE : PAGE });
    const deferredProtect = calls('mprotect').at(-1);
    expect(deferredProtect?.args[2]).toBe(PROT_NONE);
    const next = factory.createRandom(32);
    expect(factory.stats()).toMatchObject({ inUse: 2, mappings: 2, deferredUnmaps: 0 });
    next.close();
    expectIntact(factory, keep);
  });

  it('close wipes before unmapping', () => {
    const { factory, keep } = setup();
    const order = closeLast(factory, keep);
    // writable (PROT_READ|PROT_WRITE = 3) for the wipe, then unlock and unmap
    const writable = order.indexOf('mprotect:3');
    const unmap = order.findIndex((c) => c.startsWith('munmap'));
    expect(writable).toBeGreaterThanOrEqual(0);
    expect(unmap).toBeGreaterThan(writable);
    expect(factory.stats()).toMatchObject({ inUse: 0, mappings: 0, lockedBytes: 0 });
  });
});

describe.each(['off', 'require'] as const)("views of the memory, secretMemory '%s'", (secretMemory) => {
  it('a secret mapped where the last one was unmapped takes over its view (no native view made); the bytes land in the new mapping', () => {
    const factory = createFactory({ secretMemory });
    let reused = 0;
    let unmappedAt: unknown;
    for (let i = 0; i < 20; i += 1) {
      faults.calls.length = 0;
      const bytes = new Uint8Array(32).fill(i + 1);
      const secret = factory.new(bytes.slice());
      const address = calls('mmap').find((c) => !c.failed)?.result as bigint;
      const same = address === unmappedAt;
      if (same) reused += 1;
      expect(calls('view'), `cycle ${i}`).toHaveLength(same ? 0 : 1);
      // Read from outside the view (anonymous memory only: /proc/self/mem cannot read secret memory).
      if (secretMemory === 'off') expect(readMem(address, 32)).toEqual(Buffer.from(bytes));
      expect(secret.equals(bytes)).toBe(true);
      secret.close();
      unmappedAt = calls('munmap')[0]?.args[0];
    }
    expect(reused).toBeGreaterThan(0); // the kernel handed a hole back at least once
  });

  it('a secret placed in a slab that is already mapped makes no native view', () => {
    const factory = createFactory({ secretMemory, packing: 'slab' });
    const first = factory.new(Uint8Array.of(1, 2, 3));
    faults.calls.length = 0;
    const second = factory.new(Uint8Array.of(4, 5, 6));
    expect(calls('view')).toHaveLength(0);
    expect(calls('mmap')).toHaveLength(0);
    const address = (second as unknown as Record<symbol, () => { address: bigint }>)[Symbol.for('secure-memory.region')]?.().address as bigint;
    if (secretMemory === 'off') expect([...readMem(address, 3)]).toEqual([4, 5, 6]);
    expect(second.equals(Uint8Array.of(4, 5, 6))).toBe(true);
    expect(first.equals(Uint8Array.of(1, 2, 3))).toBe(true);
    first.close();
    second.close();
  });
});

describe('wiping, seen through a deferred unmap (anonymous memory, which /proc/self/mem reads even when PROT_NONE)', () => {
  it('close zero-fills the bytes before it unmaps', () => {
    const factory = createFactory({ secretMemory: 'off' });
    const secret = factory.new(new Uint8Array(64).fill(0xaa));
    const address = calls('mmap')[0]?.result as bigint;
    expect(readMem(address, 64).every((b) => b === 0xaa)).toBe(true); // the control: the bytes are there
    failNext('munmap', ENOMEM);
    secret.close();
    expect(factory.stats()).toMatchObject({ mappings: 1, deferredUnmaps: 1, lockedBytes: 0 });
    expect(readMem(address, 64).every((b) => b === 0)).toBe(true);
    factory.createRandom(1).close(); // retries the unmap
    expect(factory.stats()).toMatchObject({ mappings: 0, deferredUnmaps: 0 });
  });

  it('a refused allocation zero-fills what it wrote before it unmaps', () => {
    const factory = createFactory({ secretMemory: 'off' });
    failNext('mprotect', EINVAL);
    failNext('munmap', ENOMEM);
    expect(catchError(() => factory.new(new Uint8Array(64).fill(0xaa)))).toMatchObject({ code: 'ERR_PROTECTION_FAILED' });
    expect(factory.stats()).toMatchObject({ mappings: 1, deferredUnmaps: 1 });
    const address = calls('mmap')[0]?.result as bigint;
    expect(readMem(address, 64).every((b) => b === 0)).toBe(true);
    factory.createRandom(1).close(); // retries the unmap
    expect(factory.stats()).toMatchObject({ mappings: 0, deferredUnmaps: 0 });
  });
});

describe('lock failures', () => {
  it("anonymous, lock 'require': a refused mlock throws ERR_MEMLOCK_LIMIT with requested and limit, and unmaps", () => {
    const factory = createFactory({ secretMemory: 'off' });
    const keep = factory.new(Uint8Array.of(1));
    faults.calls.length = 0;
    failNext('mlock', ENOMEM);
    const error = catchError(() => factory.createRandom(PAGE + 1));
    expect(error).toMatchObject({ code: 'ERR_MEMLOCK_LIMIT', requested: 2 * PAGE, errno: ENOMEM, syscall: 'mlock' });
    expect(typeof error['limit']).toBe('number');
    expect(calls('munmap')).toHaveLength(1);
    expect(factory.stats()).toMatchObject({ mappings: 1, lockedBytes: PAGE });
    expect(keep.equals(Uint8Array.of(1))).toBe(true);
  });

  it("anonymous, lock 'best-effort': a refused mlock keeps the secret unlocked, and close skips munlock", () => {
    const factory = factoryWithoutCalls({ secretMemory: 'off', lock: 'best-effort' });
    failNext('mlock', ENOMEM);
    const secret = factory.createRandom(32);
    expect(factory.stats()).toMatchObject({ mappings: 1, lockedBytes: 0, unlockedMappings: 1 });
    expect(secret.equals(new Uint8Array(32))).toBe(false); // an access that hands no view out: close unmaps at once
    secret.close();
    expect(calls('munlock')).toHaveLength(0);
    expect(calls('munmap')).toHaveLength(1);
    expect(factory.stats()).toMatchObject({ mappings: 0, unlockedMappings: 0 });
  });

  it('secret memory: EAGAIN from mmap is ERR_MEMLOCK_LIMIT; the descriptor is closed', () => {
    const factory = factoryWithoutCalls({ secretMemory: 'require' });
    failNext('mmap', EAGAIN);
    expect(catchError(() => factory.createRandom(32))).toMatchObject({ code: 'ERR_MEMLOCK_LIMIT', requested: PAGE, syscall: 'mmap' });
    expect(calls('close')).toHaveLength(1);
    expect(factory.stats()).toMatchObject({ mappings: 0 });
  });

  it('secret memory: a failing memfd_secret or ftruncate throws ERR_ALLOCATION_FAILED and leaks no descriptor', () => {
    const factory = factoryWithoutCalls({ secretMemory: 'require' });
    failNext('memfdSecret', EMFILE);
    expect(catchError(() => factory.createRandom(32))).toMatchObject({ code: 'ERR_ALLOCATION_FAILED', errno: EMFILE, syscall: 'memfd_secret' });
    expect(calls('close')).toHaveLength(0);
    failNext('ftruncate', ENOMEM);
    expect(catchError(() => factory.createRandom(32))).toMatchObject({ code: 'ERR_ALLOCATION_FAILED', syscall: 'ftruncate' });
    expect(calls('close')).toHaveLength(1);
    expect(calls('mmap')).toHaveLength(0);
    expect(factory.stats()).toMatchObject({ mappings: 0 });
  });
});

describe.each(['off', 'require'] as const)("packing 'slab', secretMemory '%s'", (secretMemory) => {
  const secret = secretMemory === 'require';
  const RW = PROT_READ | PROT_WRITE;
  const protections = () => calls('mprotect').map((c) => c.args[2]);
  const locate = (s: object): bigint =>
    ((s as Record<symbol, () => { address: bigint }>)[Symbol.for('secure-memory.region')] as () => { address: bigint })().address;

  /** A slab factory holding one 4-byte secret (so one slab of the 16-byte class is mapped). */
  function setup() {
    const factory = createFactory({ secretMemory, packing: 'slab' });
    const keep = factory.new(Uint8Array.of(1, 2, 3, 4));
    faults.calls.length = 0;
    return { factory, keep };
  }

  function expectIntact(factory: ReturnType<typeof createFactory>, keep: { equals(b: Uint8Array): boolean }): void {
    expect(factory.stats()).toMatchObject({ inUse: 1, slots: 1, slabs: 1, mappings: 1, lockedBytes: PAGE, pendingWipes: 0, deferredUnmaps: 0 });
    expect(keep.equals(Uint8Array.of(1, 2, 3, 4))).toBe(true);
  }

  it('a new slab is mapped, locked and advised like a page, made PROT_NONE whole, then one page is opened to write the slot', () => {
    const { factory } = setup();
    factory.createRandom(100).close(); // the 128-byte class: a new slab
    expect(calls('munmap')).toHaveLength(0); // empty, kept to the end of the turn for the next secret of its class
    factory.stats(); // which unmaps it first
    expect(calls('mmap').map((c) => c.args[0])).toEqual([PAGE]);
    expect(calls('mlock')).toHaveLength(secret ? 0 : 1);
    expect(calls('madvise').map((c) => c.args[2])).toEqual([MADV_DONTDUMP, secret ? MADV_DONTFORK : MADV_WIPEONFORK]);
    // whole slab NONE; the page RW to write canary and data, NONE; RW to wipe, NONE; then unmapped (it was empty)
    expect(protections()).toEqual([PROT_NONE, RW, PROT_NONE, RW, PROT_NONE]);
    expect(calls('munmap')).toHaveLength(1);
  });

  it('a secret that fits an existing slab needs no mapping: made even while mmap would fail', () => {
    const { factory, keep } = setup();
    failNext('mmap', ENOMEM);
    const next = factory.createRandom(16);
    expect(calls('mmap')).toHaveLength(0);
    expect(protections()).toEqual([RW, PROT_NONE]);
    faults.pending.length = 0;
    next.close();
    expectIntact(factory, keep);
  });

  it('a refused lock of a new slab throws ERR_MEMLOCK_LIMIT for the slab, and unmaps it', () => {
    const { factory, keep } = setup();
    failNext(secret ? 'mmap' : 'mlock', secret ? EAGAIN : ENOMEM);
    const error = catchError(() => factory.createRandom(100));
    expect(error).toMatchObject({ code: 'ERR_MEMLOCK_LIMIT', requested: PAGE, syscall: secret ? 'mmap' : 'mlock' });
    expect(typeof error['limit']).toBe('number');
    expect(calls('munmap')).toHaveLength(secret ? 0 : 1);
    expectIntact(factory, keep);
  });

  it('a slab the limit refuses is tried again at half the size, down to one page; other failures are not retried', () => {
    const { factory, keep } = setup();
    const perPage = Math.floor(PAGE / 24);
    const first = Array.from({ length: perPage - 1 }, () => factory.createRandom(16)); // fills the one-page slab
    faults.calls.length = 0;
    failNext(secret ? 'mmap' : 'mlock', secret ? EAGAIN : ENOMEM);
    const next = factory.createRandom(16); // the class's second slab: two pages refused, then one
    expect(calls('mmap').map((c) => c.args[0])).toEqual([2 * PAGE, PAGE]);
    expect(calls('munmap').map((c) => c.args[1])).toEqual(secret ? [] : [2 * PAGE]);
    expect(factory.stats()).toMatchObject({ slabs: 2, mappings: 2, lockedBytes: 2 * PAGE });
    const second = Array.from({ length: perPage - 1 }, () => factory.createRandom(16)); // fills the second slab
    faults.calls.length = 0;
    failNext('mmap', EINVAL);
    expect(catchError(() => factory.createRandom(16))).toMatchObject({ code: 'ERR_ALLOCATION_FAILED', errno: EINVAL });
    expect(calls('mmap').map((c) => c.args[0])).toEqual([4 * PAGE]); // the third slab, not retried smaller
    for (const s of [...first, next, ...second]) s.close();
    expectIntact(factory, keep);
  });

  it('a failing mprotect of a new slab throws ERR_PROTECTION_FAILED and unmaps it', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL);
    expect(catchError(() => factory.createRandom(100))).toMatchObject({ code: 'ERR_PROTECTION_FAILED', syscall: 'mprotect' });
    expect(calls('munmap')[0]?.args).toEqual([calls('mmap')[0]?.result, PAGE]);
    expectIntact(factory, keep);
  });

  it('a page that cannot be made writable for the fill throws ERR_PROTECTION_FAILED; the slot is given back', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL);
    const source = Uint8Array.of(5, 6, 7);
    expect(catchError(() => factory.new(source))).toMatchObject({ code: 'ERR_PROTECTION_FAILED', errno: EINVAL });
    expect(Array.from(source)).toEqual([5, 6, 7]);
    expectIntact(factory, keep);
    const next = factory.createRandom(16); // the same slot, taken again
    expect(locate(next) - locate(keep)).toBe(24n);
    next.close();
  });

  it('a fill that throws zeroes the slot and gives it back', () => {
    const { factory, keep } = setup();
    // fromFd fills from a descriptor that ends after 2 of 16 bytes (0xaa 0xaa): a partial fill, then the failure.
    expect(withShortDescriptor((fd) => catchError(() => factory.fromFd(fd, 16)))).toMatchObject({ code: 'ERR_INVALID_SIZE' });
    expect(protections()).toEqual([RW, PROT_NONE]);
    expectIntact(factory, keep);
    if (!secret) {
      const slot = locate(keep) + 24n - 8n;
      expect(readMem(slot, 24).every((b) => b === 0)).toBe(true);
    }
  });

  it('a page that cannot be protected again after the fill: ERR_PROTECTION_FAILED, the slot zeroed, the page set back before the next allocation', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL, 1);
    expect(catchError(() => factory.new(new Uint8Array(16).fill(0xaa)))).toMatchObject({ code: 'ERR_PROTECTION_FAILED' });
    if (!secret) expect(readMem(locate(keep) + 16n, 24).every((b) => b === 0)).toBe(true);
    faults.calls.length = 0;
    const next = factory.createRandom(16);
    expect(protections()).toEqual([PROT_NONE, RW, PROT_NONE]); // the retry first
    next.close();
    expectIntact(factory, keep);
  });

  it('a failing mprotect when an access opens throws ERR_PROTECTION_FAILED and leaves the page count as it was', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL);
    expect(catchError(() => keep.withBytes((b) => b[0]))).toMatchObject({ code: 'ERR_PROTECTION_FAILED' });
    faults.calls.length = 0;
    expect(keep.withBytes((b) => b[0])).toBe(1);
    expect(protections()).toEqual([PROT_READ, PROT_NONE]);
    expectIntact(factory, keep);
  });

  it('a failing mprotect when an access ends throws ERR_PROTECTION_FAILED; the page is set back before the next allocation', () => {
    const { factory, keep } = setup();
    failNext('mprotect', EINVAL, 1);
    expect(catchError(() => keep.withBytes((b) => b[0]))).toMatchObject({ code: 'ERR_PROTECTION_FAILED' });
    faults.calls.length = 0;
    factory.createRandom(16).close();
    expect(protections()[0]).toBe(PROT_NONE);
    expectIntact(factory, keep);
  });

  it('one failed wipe is retried at once: close does not throw', () => {
    const { factory, keep } = setup();
    const doomed = factory.createRandom(16);
    failNext('mprotect', EINVAL);
    doomed.close();
    expect(factory.stats()).toMatchObject({ pendingWipes: 0 });
    expectIntact(factory, keep);
  });

  it('a slot that cannot be wiped: close throws ERR_PROTECTION_FAILED; it is wiped and freed before the next allocation', () => {
    const { factory, keep } = setup();
    const doomed = factory.new(new Uint8Array(16).fill(0xbb));
    const address = locate(doomed);
    failNext('mprotect', EINVAL);
    failNext('mprotect', EINVAL);
    expect(catchError(() => doomed.close())).toMatchObject({ code: 'ERR_PROTECTION_FAILED' });
    expect(doomed.closed).toBe(true);
    expect(factory.stats()).toMatchObject({ inUse: 1, slots: 2, pendingWipes: 1 });
    if (!secret) expect(readMem(address, 16).every((b) => b === 0xbb)).toBe(true); // not wiped yet, and counted
    factory.createRandom(16).close();
    expect(factory.stats()).toMatchObject({ pendingWipes: 0 });
    if (!secret) expect(readMem(address - 8n, 24).every((b) => b === 0)).toBe(true);
    expectIntact(factory, keep);
  });

  it('closing the last secret of a slab wipes it, then unlocks and unmaps the slab', () => {
    const { factory, keep } = setup();
    const order = closeLast(factory, keep);
    expect(order.indexOf(`mprotect:${RW}`)).toBeGreaterThanOrEqual(0);
    expect(order.findIndex((c) => c.startsWith('munmap'))).toBeGreaterThan(order.indexOf(`mprotect:${RW}`));
    expect(calls('munlock')).toHaveLength(0); // munmap unlocks
    expect(factory.stats()).toMatchObject({ inUse: 0, slabs: 0, mappings: 0, lockedBytes: 0 });
  });
});
