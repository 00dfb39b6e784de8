// The fault table: every native call the backend makes, at every point where it makes it (allocate,
// the start and the end of an access, close), made to fail with a chosen errno through the native
// layer's test seam (test/fault-seam.ts, which replaces src/native.ts's native()). Each failure must give a typed error with errno and syscall (or,
// where nothing is lost, no error at all), leak nothing (the factory's counters, VmLck, the process's
// mappings and the very addresses the backend mapped are back to what they were, once the next
// operation and a turn of the event loop have run), and leave every other live secret readable with
// its bytes. The process must never die: this file runs in one process.
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type Secret, SecureMemoryError } from '@secure-memory/core';
import { type RegionLocation, readStatusBytes } from '@secure-memory/core/backend';
import { type Mapping, findMapping, readMappings } from '@secure-memory/system';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { readSelf } from '../../testkit/test/self.js';

// The map count, with a fault's view of "the process is at vm.max_map_count" switched on by the test.
const mapCount = vi.hoisted(() => ({ atLimit: (): boolean => false }));
vi.mock('@secure-memory/core/backend', async (importOriginal) => {
  const real = await importOriginal<typeof import('@secure-memory/core/backend')>();
  return {
    ...real,
    readMapCount: (pid?: number | 'self') => {
      const count = real.readMapCount(pid);
      const max = real.readMaxMapCount();
      return mapCount.atLimit() && count !== undefined && max !== undefined ? max - 2 : count;
    },
  };
});

vi.mock('../src/native.ts', async (importOriginal) => {
  const { faultyModule } = await import('./fault-seam.ts');
  return faultyModule(await importOriginal<typeof import('../src/native.ts')>());
});

const { createFactory } = await import('../src/index.ts');
const { native, MAPPINGS_PER_SECRET } = await import('../src/native.ts');
const seam = await import('./fault-seam.ts');
type FaultPoint = import('./fault-seam.ts').FaultPoint;
type FaultSpec = import('./fault-seam.ts').FaultSpec;
type Factory = ReturnType<typeof createFactory>;

const EPERM = 1;
const EAGAIN = 11;
const ENOMEM = 12;
const EACCES = 13;
const EINVAL = 22;
const ERRNO_NAMES: Record<number, string> = { [EPERM]: 'EPERM', [EAGAIN]: 'EAGAIN', [ENOMEM]: 'ENOMEM', [EACCES]: 'EACCES', [EINVAL]: 'EINVAL' };

const REGION = Symbol.for('secure-memory.region');
const locate = (secret: Secret): RegionLocation => (secret as unknown as Record<symbol, () => RegionLocation>)[REGION]!.call(secret);
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
/** libsodium frees (munlock, munmap) from the buffer's finalizer, on a later turn of the event loop. */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Lets libsodium's deferred frees run, and collects the views handed to actions, so that retired secrets are freed. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) {
    gc();
    await turn();
  }
}

const mappingAt = (address: bigint): Mapping | undefined => findMapping(readMappings('self'), address);
/**
 * Mappings with `lo` (VM_LOCKED) in their smaps VmFlags. Only this backend locks memory in this
 * process, so unlike the whole map count (which moves whenever V8 grows or shrinks its heap) this
 * count is exact.
 */
function lockedMappings(): number {
  return readMappings('self').filter((m) => m.vmFlags.includes('lo')).length;
}

function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** What a case must end in: a typed error with these fields, or success. */
type Outcome = { code: string; errno?: number; syscall: string; requested?: number } | 'ok';
type Phase = 'allocate' | 'allocate (best-effort)' | 'access: open' | 'access: end' | 'close';

interface Case {
  phase: Phase;
  /** The call as the table names it. */
  call: string;
  errno: number;
  /** Which of the phase's calls of that kind, and how the fault is laid out. */
  variant: string;
  faults: Array<[FaultPoint, FaultSpec]>;
  outcome: Outcome;
  /**
   * The pages stay locked until libsodium's deferred free: the backend's munlock failed, or (an
   * artefact of injecting into the backend's mlock only) libsodium's own mlock held.
   */
  lockedUntilFree?: boolean;
  /** The process is made to look as if at vm.max_map_count once the fault has fired. */
  atMapLimit?: boolean;
  /** Extra checks of the defined state the failure leaves. */
  check?: (context: CaseContext) => void;
}

interface CaseContext {
  factory: Factory;
  target: Secret | undefined;
  targetBytes: Buffer;
  made: Secret | undefined;
  error: unknown;
}

const err = (code: string, errno: number, syscall: string, requested?: number): Outcome =>
  requested === undefined ? { code, errno, syscall } : { code, errno, syscall, requested };
/** sodium_mprotect_* fails and so does the mprotect made again to learn the errno: `pairs` times in a row. */
const protectionFault = (nth: number, errno: number, pairs = 1): Array<[FaultPoint, FaultSpec]> => [
  ['sodium_mprotect', { errno, nth, times: pairs }],
  ['mprotect', { errno, times: pairs }],
];

/** sodium_mprotect_* alone fails (the `nth` of the phase): the mprotect made again passes, and nothing is lost. */
const retryPasses = (phase: Phase, call: string, nth: number): Case => ({
  phase,
  call,
  errno: ENOMEM,
  variant: 'sodium_mprotect only: the mprotect made again passes',
  faults: [['sodium_mprotect', { errno: ENOMEM, nth }]],
  outcome: 'ok',
});
/**
 * sodium_mprotect_* (the `nth` of the phase) and the mprotect made again both fail, `pairs` times in a
 * row, once for each of ENOMEM, EINVAL and EACCES; an error outcome carries that errno.
 */
const protectionFails = (phase: Phase, call: string, nth: number, pairs: number, variant: string, outcome: Outcome, check?: Case['check']): Case[] =>
  [ENOMEM, EINVAL, EACCES].map((errno) => ({
    phase,
    call,
    errno,
    variant,
    faults: protectionFault(nth, errno, pairs),
    outcome: outcome === 'ok' ? outcome : { ...outcome, errno },
    ...(check === undefined ? {} : { check }),
  }));
/** The secret was closed all the same. */
const closed: Case['check'] = ({ target }) => expect((target as Secret).closed).toBe(true);

const TABLE: Case[] = [
  // allocate: the mmap probe before sodium_malloc
  ...[ENOMEM, EAGAIN, EPERM, EINVAL].map(
    (errno): Case => ({ phase: 'allocate', call: 'mmap (probe)', errno, variant: '', faults: [['mmap', { errno }]], outcome: err('ERR_ALLOCATION_FAILED', errno, 'mmap') }),
  ),
  {
    phase: 'allocate',
    call: 'mmap (probe)',
    errno: ENOMEM,
    variant: 'at vm.max_map_count',
    faults: [['mmap', { errno: ENOMEM }]],
    atMapLimit: true,
    outcome: err('ERR_MAP_LIMIT', ENOMEM, 'mmap'),
  },
  // allocate: the munmap of the probe (the secret can be made: no error; the mapping is released)
  ...[ENOMEM, EINVAL].flatMap((errno): Case[] => [
    { phase: 'allocate', call: 'munmap (probe)', errno, variant: 'once: retried at once', faults: [['munmap', { errno }]], outcome: 'ok' },
    {
      phase: 'allocate',
      call: 'munmap (probe)',
      errno,
      variant: 'twice: unmapped at the next allocation or close',
      faults: [['munmap', { errno, times: 2 }]],
      outcome: 'ok',
    },
  ]),
  // allocate: sodium_malloc (libsodium's own mmap) returning NULL, or throwing
  ...[ENOMEM, EINVAL].flatMap((errno): Case[] => [
    {
      phase: 'allocate',
      call: 'sodium_malloc',
      errno,
      variant: 'returns NULL',
      faults: [['sodium_malloc', { errno, malloc: 'null' }]],
      outcome: err('ERR_ALLOCATION_FAILED', errno, 'sodium_malloc'),
    },
    {
      phase: 'allocate',
      call: 'sodium_malloc',
      errno,
      variant: 'throws',
      faults: [['sodium_malloc', { errno, malloc: 'throw' }]],
      outcome: err('ERR_ALLOCATION_FAILED', errno, 'sodium_malloc'),
    },
  ]),
  {
    phase: 'allocate',
    call: 'sodium_malloc',
    errno: ENOMEM,
    variant: 'returns NULL at vm.max_map_count',
    faults: [['sodium_malloc', { errno: ENOMEM, malloc: 'null' }]],
    atMapLimit: true,
    outcome: err('ERR_MAP_LIMIT', ENOMEM, 'mmap'),
  },
  // allocate: the backend's mlock of the pages libsodium locked (and does not check)
  ...[ENOMEM, EAGAIN, EPERM].map(
    (errno): Case => ({ phase: 'allocate', call: 'mlock', errno, variant: '', faults: [['mlock', { errno }]], outcome: err('ERR_MEMLOCK_LIMIT', errno, 'mlock', 4096) }),
  ),
  { phase: 'allocate', call: 'mlock', errno: EINVAL, variant: '', faults: [['mlock', { errno: EINVAL }]], outcome: err('ERR_ALLOCATION_FAILED', EINVAL, 'mlock', 4096) },
  ...[ENOMEM, EAGAIN, EPERM, EINVAL].map(
    (errno): Case => ({
      phase: 'allocate (best-effort)',
      call: 'mlock',
      errno,
      variant: 'kept unlocked',
      faults: [['mlock', { errno }]],
      outcome: 'ok',
      lockedUntilFree: true,
      check: ({ made }) => expect(made).toBeDefined(),
    }),
  ),
  // allocate: the backend's madvise(MADV_DONTDUMP) of the same pages (libsodium does not check its own)
  ...[ENOMEM, EAGAIN, EPERM, EINVAL].map(
    (errno): Case => ({ phase: 'allocate', call: 'madvise', errno, variant: '', faults: [['madvise', { errno }]], outcome: err('ERR_PROTECTION_FAILED', errno, 'madvise') }),
  ),
  // allocate: sodium_mprotect_noaccess after the fill
  retryPasses('allocate', 'mprotect (noaccess)', 1),
  ...protectionFails('allocate', 'mprotect (noaccess)', 1, 1, '', err('ERR_PROTECTION_FAILED', 0, 'mprotect')),
  // access: sodium_mprotect_readonly when the first access opens
  retryPasses('access: open', 'mprotect (readonly)', 1),
  ...protectionFails('access: open', 'mprotect (readonly)', 1, 1, 'the access does not start; the pages stay PROT_NONE', err('ERR_PROTECTION_FAILED', 0, 'mprotect'), ({ target, factory }) => {
    expect(mappingAt(locate(target as Secret).address)?.perms).toBe('---p');
    expect(factory.stats().exposed).toBe(0);
  }),
  // access: sodium_mprotect_noaccess when the last access ends
  retryPasses('access: end', 'mprotect (noaccess)', 2),
  ...protectionFails(
    'access: end',
    'mprotect (noaccess)',
    2,
    1,
    'the access ends; the secret stays usable, read-only and exposed until PROT_NONE holds again',
    err('ERR_PROTECTION_FAILED', 0, 'mprotect'),
    ({ target, targetBytes, factory }) => {
      const secret = target as Secret;
      const { address } = locate(secret);
      expect(secret.closed).toBe(false);
      expect(factory.stats().exposed).toBe(1);
      expect(mappingAt(address)?.perms).toBe('r--p'); // readable, never writable
      // the next access of this secret works, and its end protects the pages again
      expect(secret.withBytes((bytes) => Buffer.from(bytes).equals(targetBytes))).toBe(true);
      expect(factory.stats().exposed).toBe(0);
      expect(mappingAt(address)?.perms).toBe('---p');
    },
  ),
  // close: sodium_mprotect_readwrite for the wipe, then munlock
  retryPasses('close', 'mprotect (readwrite)', 1),
  ...protectionFails('close', 'mprotect (readwrite)', 1, 1, "the wipe's attempt fails, free's passes: zeroed at close", 'ok', closed),
  ...protectionFails(
    'close',
    'mprotect (readwrite)',
    1,
    2,
    'every attempt fails: freed all the same (libsodium zeroes it one turn later)',
    err('ERR_PROTECTION_FAILED', 0, 'mprotect'),
    closed,
  ),
  ...[ENOMEM, EINVAL, EPERM].map(
    (errno): Case => ({
      phase: 'close',
      call: 'munlock',
      errno,
      variant: "libsodium's deferred free unlocks",
      faults: [['munlock', { errno }]],
      outcome: 'ok',
      lockedUntilFree: true,
      check: closed,
    }),
  ),
];

// The secrets that every case must leave alone.
let factory: Factory;
let bestEffort: Factory;
const bystanderBytes = [randomBytes(32), randomBytes(4096), randomBytes(5000), randomBytes(100)];
let bystanders: Secret[] = [];

beforeAll(() => {
  factory = createFactory();
  bestEffort = createFactory({ lock: 'best-effort' });
  bystanders = bystanderBytes.map((bytes, i) => (i === 3 ? bestEffort : factory).new(Buffer.from(bytes)));
});

afterEach(() => {
  seam.removeSeam();
  mapCount.atLimit = () => false;
});

interface Snapshot {
  stats: Record<string, number>;
  bestEffort: Record<string, number>;
  vmLck: number | undefined;
  lockedMappings: number;
}
const snapshot = (): Snapshot => ({
  stats: { ...factory.stats() },
  bestEffort: { ...bestEffort.stats() },
  vmLck: readStatusBytes('VmLck'),
  lockedMappings: lockedMappings(),
});

/** Runs one phase with the seam installed: what it returned or threw, and the secret it made. */
function runPhase(phase: Phase, target: Secret | undefined, source: Buffer): { error: unknown; made: Secret | undefined } {
  let made: Secret | undefined;
  const error = thrown(() => {
    switch (phase) {
      case 'allocate':
        made = factory.new(source);
        break;
      case 'allocate (best-effort)':
        made = bestEffort.new(source);
        break;
      case 'access: open':
      case 'access: end':
        (target as Secret).withBytes((bytes) => bytes.byteLength);
        break;
      case 'close':
        (target as Secret).close();
        break;
    }
  });
  return { error, made };
}

describe('the calls each phase makes (the points a fault can hit)', () => {
  it.each([
    ['allocate', ['mmap', 'munmap', 'sodium_malloc', 'mlock', 'madvise', 'sodium_mprotect']],
    ['access: open', ['sodium_mprotect', 'sodium_mprotect']],
    ['close', ['sodium_mprotect', 'munlock']],
  ] as const)('%s: %j', async (phase, expected) => {
    const target = phase === 'allocate' ? undefined : factory.createRandom(32);
    seam.installSeam();
    const { error, made } = runPhase(phase, target, randomBytes(32));
    expect(error).toBeUndefined();
    expect(seam.calls().map((c) => c.point)).toEqual(expected);
    seam.removeSeam();
    made?.close();
    target?.close();
    await settle();
  });

  it('the table covers every call of every phase, and every errno it lists', () => {
    const covered = new Set(TABLE.map((c) => `${c.phase}|${c.call}`));
    for (const point of [
      'allocate|mmap (probe)',
      'allocate|munmap (probe)',
      'allocate|sodium_malloc',
      'allocate|mlock',
      'allocate (best-effort)|mlock',
      'allocate|madvise',
      'allocate|mprotect (noaccess)',
      'access: open|mprotect (readonly)',
      'access: end|mprotect (noaccess)',
      'close|mprotect (readwrite)',
      'close|munlock',
    ]) {
      expect(covered.has(point), point).toBe(true);
    }
  });
});

describe('the fault table', () => {
  it.each(TABLE.map((c) => [`${c.phase}: ${c.call} ${ERRNO_NAMES[c.errno]}${c.variant === '' ? '' : ` (${c.variant})`} -> ${c.outcome === 'ok' ? 'no error' : c.outcome.code}`, c] as const))(
    '%s',
    async (_name, c) => {
      await settle();
      const before = snapshot();
      const targetBytes = randomBytes(48);
      const target = c.phase.startsWith('allocate') ? undefined : factory.new(Buffer.from(targetBytes));
      const targetAddress = target === undefined ? undefined : locate(target).address;
      const source = Buffer.from(randomBytes(40));
      const sourceCopy = Buffer.from(source);

      seam.installSeam();
      for (const [point, spec] of c.faults) seam.failCall(point, spec);
      if (c.atMapLimit === true) {
        // the process looks as if at vm.max_map_count from the moment the fault fires
        mapCount.atLimit = () => seam.calls().some((call) => call.injected);
      }
      const { error, made } = runPhase(c.phase, target, source);
      mapCount.atLimit = () => false;
      expect(seam.faultsPending(), 'every armed fault fired').toBe(false);
      seam.clearFaults();

      if (c.outcome === 'ok') {
        expect(error).toBeUndefined();
      } else {
        expect(error).toBeInstanceOf(SecureMemoryError);
        expect(error).toMatchObject({ ...c.outcome, backend: 'sodium' });
      }
      if (c.phase.startsWith('allocate')) {
        // new() zero-fills its source only when the secret was made
        expect(source.equals(error === undefined ? Buffer.alloc(40) : sourceCopy)).toBe(true);
        if (made !== undefined) expect(made.equals(sourceCopy)).toBe(true);
      }
      c.check?.({ factory, target, targetBytes, made, error });
      if (c.phase.startsWith('access') && target !== undefined) {
        // the secret is still usable and holds its bytes
        expect(target.withBytes((bytes) => Buffer.from(bytes).equals(targetBytes))).toBe(true);
      }

      // every other live secret is readable with its bytes
      for (const [i, secret] of bystanders.entries()) expect(secret.equals(bystanderBytes[i] as Buffer)).toBe(true);

      // every address the phase mapped (probe, sodium_malloc), the secret it made, and the target
      const addresses = [
        ...seam.calls().flatMap((call) => ((call.point === 'mmap' || call.point === 'sodium_malloc') && typeof call.result === 'bigint' ? [call.result] : [])),
        ...(made === undefined ? [] : [locate(made).address]),
        ...(targetAddress === undefined ? [] : [targetAddress]),
      ];
      if (c.phase.startsWith('allocate')) expect(seam.calls('mmap').length).toBeGreaterThan(0);
      made?.close();
      target?.close();
      // the lock is given back at once (not one turn later, by libsodium), unless the case says otherwise
      if (c.lockedUntilFree !== true) expect(readStatusBytes('VmLck')).toBe(before.vmLck);
      seam.removeSeam();
      // the next operation releases what a failure left pending (a probe mapping, exposed pages)
      factory.createRandom(1).close();
      await settle();

      expect(factory.stats()).toEqual({ ...before.stats, allocated: factory.stats().allocated });
      expect(bestEffort.stats()).toEqual({ ...before.bestEffort, allocated: bestEffort.stats().allocated });
      expect(factory.stats()).toMatchObject({ exposed: 0 });
      expect(readStatusBytes('VmLck')).toBe(before.vmLck);
      for (const address of addresses) expect(mappingAt(address), `0x${address.toString(16)} unmapped`).toBeUndefined();
      expect(lockedMappings()).toBe(before.lockedMappings);
    },
  );
});

describe('defined states, looked at more closely', () => {
  it('close: when the wipe cannot make the pages writable, free makes them writable and zeroes them at close', async () => {
    const secret = factory.new(Buffer.alloc(64, 0xaa));
    const { address, size } = locate(secret);
    seam.failCall('sodium_mprotect', { errno: EINVAL });
    seam.failCall('mprotect', { errno: EINVAL });
    secret.close();
    // still mapped until libsodium's deferred free, and writable now: readable from here
    expect(mappingAt(address)?.perms).toBe('rw-p');
    expect(native().view(address, size).every((b) => b === 0)).toBe(true);
    await settle();
    expect(mappingAt(address)).toBeUndefined();
  });

  it('close: when no attempt passes, close throws after releasing; the pages stay PROT_NONE until libsodium frees them', async () => {
    const before = factory.stats();
    const secret = factory.new(Buffer.alloc(64, 0xaa));
    const { address } = locate(secret);
    seam.failCall('sodium_mprotect', { errno: ENOMEM, times: 2 });
    seam.failCall('mprotect', { errno: ENOMEM, times: 2 });
    expect(thrown(() => secret.close())).toMatchObject({ code: 'ERR_PROTECTION_FAILED', errno: ENOMEM, syscall: 'mprotect' });
    expect(secret.closed).toBe(true);
    expect(thrown(() => secret.withBytes(() => 0))).toMatchObject({ code: 'ERR_SECRET_CLOSED' });
    expect(factory.stats()).toMatchObject({ inUse: before.inUse, lockedBytes: before.lockedBytes, mappings: before.mappings });
    expect(mappingAt(address)?.perms).toBe('---p');
    await settle();
    expect(mappingAt(address)).toBeUndefined();
  });

  it('access end: an exposed secret is protected again at the next allocation of its factory', async () => {
    const secret = factory.createRandom(32);
    const { address } = locate(secret);
    seam.failCall('sodium_mprotect', { errno: ENOMEM, nth: 2 });
    seam.failCall('mprotect', { errno: ENOMEM });
    expect(thrown(() => secret.withBytes(() => 0))).toMatchObject({ code: 'ERR_PROTECTION_FAILED', errno: ENOMEM });
    expect(factory.stats().exposed).toBe(1);
    expect(mappingAt(address)?.perms).toBe('r--p');
    // the retry fails too: still exposed, and the allocation goes on
    seam.failCall('sodium_mprotect', { errno: ENOMEM });
    seam.failCall('mprotect', { errno: ENOMEM });
    const other = factory.createRandom(32);
    expect(factory.stats().exposed).toBe(1);
    // the next one passes
    other.close();
    const third = factory.createRandom(32);
    expect(factory.stats().exposed).toBe(0);
    expect(mappingAt(address)?.perms).toBe('---p');
    third.close();
    secret.close();
    await settle();
  });

  it('access end: the error replaces the action result, for withBytesAsync too; the secret stays usable', async () => {
    const bytes = randomBytes(32);
    const secret = factory.new(Buffer.from(bytes));
    seam.failCall('sodium_mprotect', { errno: EINVAL, nth: 2 });
    seam.failCall('mprotect', { errno: EINVAL });
    await expect(secret.withBytesAsync(async (view) => view.byteLength)).rejects.toMatchObject({ code: 'ERR_PROTECTION_FAILED', errno: EINVAL });
    expect(factory.stats().exposed).toBe(1);
    expect(secret.equals(bytes)).toBe(true);
    expect(factory.stats().exposed).toBe(0);
    secret.close();
    await settle();
  });

  it('access end after close() inside the action: the error surfaces, and the secret is wiped and freed all the same', async () => {
    const before = factory.stats();
    const secret = factory.createRandom(32);
    const { address } = locate(secret);
    seam.failCall('sodium_mprotect', { errno: ENOMEM, nth: 2 });
    seam.failCall('mprotect', { errno: ENOMEM });
    expect(thrown(() => secret.withBytes(() => secret.close()))).toMatchObject({ code: 'ERR_PROTECTION_FAILED' });
    expect(secret.closed).toBe(true);
    expect(factory.stats()).toMatchObject({ inUse: before.inUse, lockedBytes: before.lockedBytes, exposed: 0 });
    // Wiped, and (a view was handed to the action) retired: PROT_NONE until that view is collected,
    // so it is read through /proc/self/mem, which ignores page protections.
    expect(mappingAt(address)?.perms).toBe('---p');
    expect(readSelf(address, 32, 0x55).every((b) => b === 0)).toBe(true);
    await settle();
    expect(mappingAt(address)).toBeUndefined();
  });

  it('allocate: a probe mapping that cannot be unmapped is released by the next close when no allocation comes', async () => {
    seam.failCall('munmap', { errno: ENOMEM, times: 2 });
    const secret = factory.createRandom(32);
    const probe = seam.calls('mmap')[0]?.result as bigint;
    expect(mappingAt(probe)).toBeDefined();
    secret.close();
    expect(mappingAt(probe)).toBeUndefined();
    await settle();
  });

  it('allocate: mapping the same secret again after each failure works, many times over (no credit or counter drifts)', async () => {
    const before = factory.stats();
    for (let i = 0; i < 200; i += 1) {
      seam.failCall(['mmap', 'sodium_malloc', 'mlock', 'madvise'][i % 4] as FaultPoint, { errno: ENOMEM });
      expect(thrown(() => factory.createRandom(32))).toBeInstanceOf(SecureMemoryError);
    }
    seam.removeSeam();
    const ok = factory.createRandom(32);
    expect(ok.withBytes((b) => b.byteLength)).toBe(32);
    ok.close();
    expect(factory.stats()).toMatchObject({ inUse: before.inUse, lockedBytes: before.lockedBytes, mappings: before.mappings });
    await settle();
  });

  it(`a secret takes ${MAPPINGS_PER_SECRET} mappings (one locked), all returned a turn after close: what the table checks`, async () => {
    await settle();
    const locked = lockedMappings();
    const secrets = Array.from({ length: 10 }, () => factory.createRandom(32));
    const bases = secrets.map((s) => locate(s).address + 32n - 3n * 4096n); // the base page, two pages before the data's page
    expect(lockedMappings() - locked).toBe(10);
    for (const [i, base] of bases.entries()) {
      const { address } = locate(secrets[i] as Secret);
      // base page r--, guard ---, data ---, guard ---: four mappings
      expect([base, base + 4096n, address, address + 32n].map((a) => mappingAt(a)?.perms)).toEqual(['r--p', '---p', '---p', '---p']);
      expect(new Set([base, base + 4096n, address, address + 32n].map((a) => mappingAt(a)?.start)).size).toBe(MAPPINGS_PER_SECRET);
    }
    for (const s of secrets) s.close();
    await settle();
    expect(lockedMappings()).toBe(locked);
    for (const base of bases) expect(mappingAt(base)).toBeUndefined();
  });
});

describe('the first factory of a process: faults in its sentinel allocation are typed, and not kept', () => {
  it.each([
    ['mmap (probe)', [['mmap', { errno: ENOMEM }]], { code: 'ERR_ALLOCATION_FAILED', errno: ENOMEM, syscall: 'mmap' }],
    ['sodium_malloc', [['sodium_malloc', { errno: ENOMEM }]], { code: 'ERR_ALLOCATION_FAILED', errno: ENOMEM, syscall: 'sodium_malloc' }],
    ['sodium_malloc (throws)', [['sodium_malloc', { errno: EINVAL, malloc: 'throw' }]], { code: 'ERR_ALLOCATION_FAILED', errno: EINVAL, syscall: 'sodium_malloc' }],
    ['mprotect (readonly)', protectionFault(1, EACCES), { code: 'ERR_PROTECTION_FAILED', errno: EACCES, syscall: 'mprotect' }],
  ] as const)('%s', async (_label, faults, outcome) => {
    vi.resetModules();
    const fresh = await import('../src/index.ts');
    const freshSeam = seam; // the replaced native module outlives vi.resetModules(), and with it the seam it calls
    try {
      for (const [point, spec] of faults) freshSeam.failCall(point as FaultPoint, spec as FaultSpec);
      const error = thrown(() => fresh.createFactory());
      expect(error).toMatchObject(outcome);
      expect(freshSeam.faultsPending()).toBe(false);
      // not cached: the next factory is made, and works
      const next = fresh.createFactory();
      const secret = next.createRandom(16);
      expect(secret.withBytes((b) => b.byteLength)).toBe(16);
      secret.close();
    } finally {
      freshSeam.removeSeam();
    }
    for (const [i, secret] of bystanders.entries()) expect(secret.equals(bystanderBytes[i] as Buffer)).toBe(true);
  });
});
