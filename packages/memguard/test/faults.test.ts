// The fault table: every system call the addon makes (and the OpenSSL seal and open), made to fail
// with each errno that fits, at each point of each operation where it is made (the points are
// counted first, through the seam). Each failure must give a typed error with the right code, errno
// and syscall (or, where the package recovers, succeed), leave nothing behind (the books, VmLck, and
// the process's own mappings back where they were, the pool consistent with the kernel), and leave
// every other live buffer and secret readable. The seam is the addon's own (testHooks.setFault):
// compiled in always, inert unless armed.
import { constants } from 'node:os';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SecureMemoryError } from '@secure-memory/core';
import { readStatusBytes } from '@secure-memory/core/backend';
import {
  type Enclave,
  type LockedBuffer,
  keyInfo,
  lockedBufferStats,
  newBuffer,
  newBufferFromBytes,
  newEnclave,
  poolStats,
  purge,
} from '@secure-memory/memguard';
import { type FaultCall, testHooks } from '../src/testing.js';
import { type Fault, type Outcome, type Phase, PHASES, codeOf, enclaveFactory, known, lockedFactory, thrown, warm } from './fault-phases.js';
import { PAGE, locate, peekSelf } from './helpers.js';

const { ENOMEM, EAGAIN, EPERM, EINVAL, EACCES, ENOSYS, EMFILE, EIO, EBADMSG } = constants.errno;
const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** The errnos each call is made to fail with: those its manual lists (and that the code must tell apart). */
const ERRNOS: Record<FaultCall, readonly number[]> = {
  mmap: [ENOMEM, EAGAIN, EPERM, EINVAL],
  mprotect: [ENOMEM, EACCES, EINVAL],
  mlock: [ENOMEM, EPERM, EAGAIN, EINVAL],
  mlock2: [ENOMEM, EPERM, EAGAIN, EINVAL],
  munlock: [ENOMEM, EPERM, EINVAL],
  madvise: [EINVAL, ENOMEM, EAGAIN, EPERM],
  munmap: [EINVAL, ENOMEM],
  memfd_secret: [ENOSYS, EPERM, EMFILE],
  ftruncate: [ENOMEM, EINVAL],
  seal: [EIO],
  open: [EIO, EBADMSG],
};


/** The outcome of a fault where no phase says otherwise. */
function defaultOutcome(call: FaultCall, errno: number): Outcome {
  switch (call) {
    case 'mmap':
      return { code: 'ERR_ALLOCATION_FAILED', errno, syscall: 'mmap' };
    case 'mprotect':
      return { code: 'ERR_PROTECTION_FAILED', errno, syscall: 'mprotect' };
    case 'madvise':
      return { code: 'ERR_PROTECTION_FAILED', errno, syscall: 'madvise' };
    case 'mlock':
    case 'mlock2':
      // mlock2(MLOCK_ONFAULT) that the kernel does not know (EINVAL) falls back to mlock.
      if (call === 'mlock2' && errno === EINVAL) return 'ok';
      if (errno === ENOMEM || errno === EPERM) return { code: 'ERR_MEMLOCK_LIMIT', errno, syscall: 'mlock' };
      return { code: 'ERR_ALLOCATION_FAILED', errno, syscall: 'mlock' };
    case 'munlock': // munmap unlocks too
    case 'munmap': // the pages are wiped; the munmap is retried later
    case 'memfd_secret': // the key state falls back to locked memory
    case 'ftruncate':
      return 'ok';
    case 'seal':
      return { code: 'ERR_BACKEND_UNAVAILABLE' };
    case 'open':
      return errno === EBADMSG ? { code: 'ERR_INTEGRITY' } : { code: 'ERR_BACKEND_UNAVAILABLE' };
  }
}

/** The mappings of this package in /proc/self/smaps: bytes advised MADV_DONTDUMP, and locked mappings (one per live or pooled mapping, and the key state). */
function ourMappings(): { ddBytes: number; locked: number } {
  let ddBytes = 0;
  let locked = 0;
  let size = 0;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (header !== null) {
      size = Number(BigInt(`0x${header[2]}`) - BigInt(`0x${header[1]}`));
    } else if (line.startsWith('VmFlags:')) {
      const flags = line.slice(8).trim().split(/\s+/);
      if (flags.includes('dd')) ddBytes += size;
      if (flags.includes('lo')) locked += 1;
    }
  }
  return { ddBytes, locked };
}

const books = (stats: Record<string, number>): Record<string, number> => {
  const { allocated: _allocated, ...rest } = stats;
  return rest;
};

/**
 * What must come back after a failure: the package's books, and what the kernel says. Reading
 * /proc/self/smaps costs about 10 ms in a test worker, so `mappings: false` leaves the mappings out
 * (each case checks its books and VmLck; each test of a call, all its cases, checks the mappings too).
 */
type Snapshot = Awaited<ReturnType<typeof snapshot>>;

async function snapshot(mappings = true) {
  // Warm regions (the bystanders' enclave-mode secrets read after every case) are given back first:
  // a refused mapping takes them back anyway, and the books compare what the case itself left.
  testHooks.coolWarm();
  await testHooks.settleViews();
  const pool = poolStats();
  return {
    books: {
      buffers: lockedBufferStats(),
      locked: books(lockedFactory.stats()),
      enclave: books(enclaveFactory.stats()),
      pendingUnmaps: pool.pendingUnmaps,
    },
    pool: { free: pool.free, freeLockedBytes: pool.freeLockedBytes },
    vmLck: readStatusBytes('VmLck') ?? 0,
    ...(mappings ? ourMappings() : undefined),
  };
}

/** The books are as they were; the kernel's locked bytes and mappings moved exactly as the pool's free mappings did. */
function expectNothingLeft(before: Snapshot, after: Snapshot, label: string): void {
  expect(after.books, label).toEqual(before.books);
  const freeDelta = after.pool.free - before.pool.free;
  const lockedDelta = after.pool.freeLockedBytes - before.pool.freeLockedBytes;
  expect(after.vmLck - before.vmLck, `${label}: VmLck`).toBe(lockedDelta);
  if (before.locked === undefined || after.locked === undefined) return;
  expect(after.locked - before.locked, `${label}: locked mappings`).toBe(freeDelta);
  expect((after.ddBytes as number) - (before.ddBytes as number), `${label}: mapped bytes`).toBe(lockedDelta + 2 * PAGE * freeDelta);
}

/** Live buffers and secrets of every kind, made before the table and read after every case. */
interface Bystanders {
  check(label: string): void;
  release(): Promise<void>;
}

function makeBystanders(): Bystanders {
  const frozen = newBufferFromBytes(known(32, 1));
  const mutable = newBuffer(100);
  mutable.copy(known(100, 2));
  const lockedSecret = lockedFactory.new(known(48, 3));
  const enclaveSecret = enclaveFactory.new(known(40, 4));
  const anchored = enclaveFactory.new(known(24, 5));
  locate(anchored); // anchors a pooled region to it
  const enclave = newEnclave(known(56, 6));
  const opened = newEnclave(known(20, 7)).open();
  // Accesses in progress for the whole table, one per mode.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const views: Uint8Array[] = [];
  const pending = [
    { secret: enclaveFactory.new(known(30, 8)), bytes: known(30, 8) },
    { secret: lockedFactory.new(known(36, 9)), bytes: known(36, 9) },
  ].map(({ secret, bytes }) => ({
    secret,
    bytes,
    done: secret.withBytesAsync(async (view) => {
      views.push(view);
      await gate;
    }),
  }));
  return {
    check(label) {
      expect(frozen.equalTo(known(32, 1)), `${label}: frozen buffer`).toBe(true);
      expect(mutable.equalTo(known(100, 2)), `${label}: mutable buffer`).toBe(true);
      expect(lockedSecret.equals(known(48, 3)), `${label}: locked-mode secret`).toBe(true);
      expect(enclaveSecret.equals(known(40, 4)), `${label}: enclave-mode secret`).toBe(true);
      expect(anchored.equals(known(24, 5)), `${label}: anchored enclave-mode secret`).toBe(true);
      const reopened = enclave.open();
      expect(reopened.equalTo(known(56, 6)), `${label}: Enclave`).toBe(true);
      reopened.destroy();
      expect(opened.equalTo(known(20, 7)), `${label}: opened Enclave`).toBe(true);
      for (const [i, { bytes }] of pending.entries()) expect(Buffer.from(views[i] as Uint8Array).equals(bytes), `${label}: access in progress ${i}`).toBe(true);
    },
    async release() {
      release();
      await Promise.all(pending.map((p) => p.done));
      for (const p of pending) p.secret.close();
      for (const s of [lockedSecret, enclaveSecret, anchored]) s.close();
      for (const b of [frozen, mutable, opened]) b.destroy();
      views.length = 0; // the kept views: their memory can be released now
    },
  };
}

// --- The table ----------------------------------------------------------------------------------------

interface Row {
  phase: string;
  call: FaultCall;
  at: number;
  errno: string;
  outcome: string;
}
const rows: Row[] = [];

function prepare(p: Phase<unknown>): unknown {
  if (p.pool === 'cold') testHooks.drainPool();
  else if (typeof p.pool === 'number') warm(p.pool);
  return p.setup();
}

/** How many calls of each kind the phase makes (the points where each can fail). */
function countPoints(p: Phase<unknown>): [FaultCall, number][] {
  const t = prepare(p);
  testHooks.countCalls();
  let counts: Record<FaultCall, number>;
  try {
    p.act(t);
  } finally {
    counts = testHooks.faultCalls();
    testHooks.clearFaults();
    p.teardown(t);
  }
  return Object.entries(counts).filter(([, n]) => n > 0) as [FaultCall, number][];
}

async function runCase(p: Phase<unknown>, fault: Fault, bystanders: Bystanders): Promise<void> {
  const label = `${p.name}: ${fault.call} #${fault.at} ${ERRNO_NAMES.get(fault.errno) ?? fault.errno}`;
  const before = await snapshot(false);
  const t = prepare(p);
  testHooks.setFault(fault.call, fault.errno, { after: fault.at });
  let error: unknown;
  try {
    error = thrown(() => p.act(t));
  } finally {
    testHooks.clearFaults();
  }
  const expected = p.outcome?.(fault) ?? defaultOutcome(fault.call, fault.errno);
  if (expected === 'ok') {
    expect(error, label).toBeUndefined();
  } else {
    expect(error, label).toBeInstanceOf(SecureMemoryError);
    expect(error, label).toMatchObject(expected);
  }
  rows.push({
    phase: p.name,
    call: fault.call,
    at: fault.at,
    errno: ERRNO_NAMES.get(fault.errno) ?? String(fault.errno),
    outcome: expected === 'ok' ? 'ok' : expected.code,
  });
  p.check?.(t, error !== undefined, fault);
  p.teardown(t);
  newBuffer(1).destroy(); // the next allocation retries a munmap that failed
  expectNothingLeft(before, await snapshot(false), label);
  bystanders.check(label);
}

/** Every point and errno of one call in one phase; the process's mappings are checked around them all. */
async function runCall(p: Phase<unknown>, call: FaultCall, points: number, bystanders: Bystanders): Promise<void> {
  const before = await snapshot();
  for (let at = 0; at < points; at += 1) {
    for (const errno of ERRNOS[call]) await runCase(p, { call, errno, at }, bystanders);
  }
  expectNothingLeft(before, await snapshot(), `${p.name}: ${call}, all cases`);
}

describe('the fault table: each call fails at each point, with each errno', () => {
  let bystanders: Bystanders;
  beforeAll(() => {
    purge();
    bystanders = makeBystanders();
    bystanders.check('before the table');
  });
  afterAll(async () => {
    await bystanders.release();
    expect(lockedBufferStats()).toMatchObject({ buffers: 0, lockedBytes: 0, leaked: 0 });
    expect(lockedFactory.stats()).toMatchObject({ inUse: 0, buffers: 0, lockedBytes: 0, leaked: 0 });
    expect(enclaveFactory.stats()).toMatchObject({ inUse: 0, buffers: 0, lockedBytes: 0, leaked: 0, ciphertextBytes: 0 });
  });
  afterEach(() => testHooks.clearFaults());

  newEnclave(new Uint8Array(1)); // the process key exists while the table runs: count with it
  for (const p of PHASES) {
    describe(p.name, () => {
      const points = countPoints(p);
      it('makes seamed calls', () => {
        expect(points.length).toBeGreaterThan(0);
      });
      it.each(points)('%s (%i points)', (call, n) => runCall(p, call, n, bystanders));
    });
  }
});

describe('the process key: its first use after a purge', () => {
  let mmapPoints = 0;
  const keyPhase: Phase<{ src: Uint8Array; buf: LockedBuffer; secret: ReturnType<typeof lockedFactory.new>; enclave?: Enclave }> = {
    name: 'the first seal after a purge (makes the key state)',
    setup: () => ({ src: known(32, 60), buf: newBufferFromBytes(known(32, 61)), secret: lockedFactory.new(known(32, 62)) }),
    act: (t) => {
      t.enclave = newEnclave(t.src);
    },
    check: (t, failed, { call }) => {
      expect(Buffer.from(t.src).equals(failed ? known(32, 60) : new Uint8Array(32))).toBe(true);
      if (!failed) {
        using opened = t.enclave?.open();
        expect(opened?.equalTo(known(32, 60))).toBe(true);
        // Secret memory refused: the key state lives in guarded, locked memory instead.
        const fallback = call === 'memfd_secret' || call === 'ftruncate' || call === 'mmap';
        expect(keyInfo().storage).toBe(fallback ? 'locked-memory' : 'secret-memory');
      }
      expect(t.buf.equalTo(known(32, 61))).toBe(true);
      expect(t.secret.equals(known(32, 62))).toBe(true);
    },
    teardown: (t) => {
      t.buf.destroy();
      t.secret.close();
      purge();
    },
    outcome: ({ call, errno, at }) => {
      if (call !== 'mmap') return undefined;
      // The last mmap maps the region the source is copied into to be sealed (after the key is made).
      if (at === mmapPoints - 1) return { code: 'ERR_ALLOCATION_FAILED', errno, syscall: 'mmap' };
      // Secret memory is charged to RLIMIT_MEMLOCK: its mmap says EAGAIN when that is exhausted.
      return errno === EAGAIN ? { code: 'ERR_MEMLOCK_LIMIT', errno, syscall: 'mmap' } : 'ok';
    },
  };
  const secretMemory = (() => {
    purge();
    newEnclave(new Uint8Array(1));
    const storage = keyInfo().storage;
    purge();
    return storage === 'secret-memory';
  })();
  const bystanders: Bystanders = { check: () => {}, release: async () => {} };
  beforeAll(() => purge()); // no key: each case makes it, and its teardown purges it again
  const points = secretMemory ? countPoints(keyPhase as Phase<unknown>) : [];
  mmapPoints = points.find(([call]) => call === 'mmap')?.[1] ?? 0;

  it.skipIf(!secretMemory).each(points)('%s (%i points)', (call, n) => runCall(keyPhase as Phase<unknown>, call, n, bystanders));
});

describe('faults that persist', () => {
  afterEach(() => {
    testHooks.clearFaults();
    purge();
  });

  it('mprotect failing every time: accesses fail and leave the secrets usable; close releases the pages unwiped and says so', async () => {
    newEnclave(new Uint8Array(1)); // the process key, before the snapshot
    const before = await snapshot();
    const locked = lockedFactory.new(known(32, 70));
    const enclaveMode = enclaveFactory.new(known(32, 71));
    const frozen = newBufferFromBytes(known(32, 72));
    testHooks.setFault('mprotect', EINVAL, { count: Number.POSITIVE_INFINITY });
    expect(codeOf(() => locked.withBytes(() => 0))).toBe('ERR_PROTECTION_FAILED');
    expect(codeOf(() => enclaveMode.withBytes(() => 0))).toBe('ERR_PROTECTION_FAILED');
    // Nothing can be made writable to be wiped: the pages are unmapped as they are, and the error said.
    expect(codeOf(() => locked.close())).toBe('ERR_PROTECTION_FAILED');
    expect(locked.closed).toBe(true);
    expect(codeOf(() => frozen.destroy())).toBe('ERR_PROTECTION_FAILED');
    expect(frozen.isAlive).toBe(false);
    testHooks.clearFaults();
    expect(enclaveMode.equals(known(32, 71))).toBe(true);
    enclaveMode.close();
    newBuffer(1).destroy();
    expectNothingLeft(before, await snapshot(), 'persistent mprotect');
  });

  it('munmap failing every time: destroyed buffers are wiped, PROT_NONE and unlocked, counted, and unmapped once munmap works', async () => {
    const before = await snapshot();
    const buffers = [1, 2, 3].map((seed) => newBufferFromBytes(known(64, seed + 80)));
    const secret = lockedFactory.new(known(64, 84));
    const addresses = [...buffers.map((b) => locate(b).address), locate(secret).address];
    testHooks.setFault('munmap', EINVAL, { count: Number.POSITIVE_INFINITY });
    for (const b of buffers) b.destroy();
    secret.close();
    newBuffer(1).destroy(); // retries, and fails again (its own munmap too)
    expect(lockedBufferStats()).toMatchObject({ buffers: 0, lockedBytes: 0, leaked: 4 });
    expect(lockedFactory.stats()).toMatchObject({ inUse: 0, buffers: 0, lockedBytes: 0, leaked: 1 });
    expect(poolStats().pendingUnmaps).toBe(5);
    expect(readStatusBytes('VmLck')).toBe(before.vmLck); // unlocked before the munmap
    for (const address of addresses) expect(peekSelf(address)).toBe(0); // wiped (read through /proc/self/mem)
    testHooks.clearFaults();
    newBuffer(1).destroy();
    expect(poolStats().pendingUnmaps).toBe(0);
    expectNothingLeft(before, await snapshot(), 'persistent munmap');
  });

  it('a mapping refused by the memlock limit first takes back the regions enclave-mode secrets keep warm', () => {
    const secrets = [1, 2, 3].map((seed) => enclaveFactory.new(known(32, 100 + seed)));
    testHooks.drainPool(); // nothing else to take back: no free mapping, no tombstone
    for (const s of secrets) s.withBytes((view) => view[0]); // fresh regions, kept warm
    expect(enclaveFactory.stats().lockedBytes).toBeGreaterThanOrEqual(3 * PAGE);
    expect(poolStats().free).toBe(0);
    testHooks.setFault('mlock', ENOMEM);
    const buffer = newBuffer(32); // refused once, then made in the room the warm regions left
    testHooks.clearFaults();
    expect(buffer.isAlive).toBe(true);
    buffer.destroy();
    for (const [i, s] of secrets.entries()) expect(s.equals(known(32, 101 + i))).toBe(true);
    for (const s of secrets) s.close();
  });

  it('a destroy that works makes no munlock (munmap unlocks); one whose munmap fails unlocks before the retry', () => {
    const buffer = newBufferFromBytes(known(64, 85));
    testHooks.countCalls();
    buffer.destroy();
    const calls = testHooks.faultCalls();
    testHooks.clearFaults();
    expect({ munmap: calls.munmap, munlock: calls.munlock }).toEqual({ munmap: 1, munlock: 0 });
  });

  it('mprotect and munmap both failing: a frozen buffer that can be neither wiped nor unmapped stays alive, and destroy() works once they do', async () => {
    const before = await snapshot();
    const frozen = newBufferFromBytes(known(32, 90));
    testHooks.setFault('mprotect', EINVAL, { count: Number.POSITIVE_INFINITY });
    testHooks.setFault('munmap', EINVAL, { count: Number.POSITIVE_INFINITY });
    expect(codeOf(() => frozen.destroy())).toBe('ERR_PROTECTION_FAILED');
    expect(frozen.isAlive).toBe(true);
    expect(frozen.bytes().byteLength).toBe(32); // a new view: the old one was detached
    testHooks.clearFaults();
    expect(frozen.equalTo(known(32, 90))).toBe(true);
    frozen.destroy();
    expectNothingLeft(before, await snapshot(), 'persistent mprotect and munmap');
  });

  it('a failed allocation whose cleanup munmap fails too: the empty mapping is retried later, nothing counted against a buffer', async () => {
    const before = await snapshot();
    testHooks.setFault('madvise', EINVAL);
    testHooks.setFault('munmap', ENOMEM);
    expect(codeOf(() => newBuffer(32))).toBe('ERR_PROTECTION_FAILED');
    expect(poolStats().pendingUnmaps).toBe(1);
    expect(lockedBufferStats()).toMatchObject({ buffers: 0, leaked: 0 });
    newBuffer(1).destroy();
    expectNothingLeft(before, await snapshot(), 'cleanup munmap');
  });

  it('madvise skipped (errno 0, for the core-dump control): allocations succeed without MADV_DONTDUMP', () => {
    testHooks.setFault('madvise', 0, { count: Number.POSITIVE_INFINITY });
    using buf = newBuffer(32);
    const { ddBytes } = ourMappings();
    testHooks.clearFaults();
    using advised = newBuffer(32);
    expect(ourMappings().ddBytes).toBeGreaterThan(ddBytes);
    expect(buf.isAlive && advised.isAlive).toBe(true);
  });

  it('the seam refuses bad arguments, and counts nothing unarmed', () => {
    expect(codeOf(() => testHooks.setFault('fork' as FaultCall, EINVAL))).toBe('ERR_INVALID_ARG_VALUE');
    expect(codeOf(() => testHooks.setFault('mmap', 0))).toBe('ERR_OUT_OF_RANGE'); // only madvise can be skipped
    expect(codeOf(() => testHooks.setFault('mmap', EINVAL, { after: -1 }))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => testHooks.setFault('mmap', EINVAL, { count: 0 }))).toBe('ERR_OUT_OF_RANGE');
    expect(codeOf(() => testHooks.setFault('mmap', '12' as unknown as number))).toBe('ERR_INVALID_ARG_TYPE');
    testHooks.clearFaults();
    newBuffer(1).destroy();
    expect(Object.values(testHooks.faultCalls()).every((n) => n === 0)).toBe(true);
  });
});

afterAll(() => {
  if (process.env['MEMGUARD_FAULT_TABLE'] === undefined) return;
  // Compact: one line per phase, call and outcome, with the points and errnos it covered.
  const groups = new Map<string, { points: Set<number>; errnos: Set<string> }>();
  for (const r of rows) {
    const key = `| ${r.phase} | ${r.call} | ${r.outcome} |`;
    const g = groups.get(key) ?? { points: new Set(), errnos: new Set() };
    g.points.add(r.at);
    g.errnos.add(r.errno);
    groups.set(key, g);
  }
  const lines = [...groups].map(([key, g]) => `${key} ${[...g.points].map((p) => `#${p}`).join(' ')} | ${[...g.errnos].join(' ')} |`);
  console.log(`fault table: ${rows.length} cases\n| phase | call | outcome | points | errnos |\n|---|---|---|---|---|\n${lines.join('\n')}`);
});
