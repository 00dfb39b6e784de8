// The operations of the fault table (faults.test.ts): each one that makes a seamed call, with what
// it needs around it (setup, teardown, the checks after a fault, and where its outcome differs
// from the default). Kept apart from the table's runner so that each file does one job.
import { constants } from 'node:os';
import { expect } from 'vitest';
import { type Enclave, type LockedBuffer, Stream, createFactory, newBuffer, newBufferFromBytes, newBufferRandom, newEnclave, newEnclaveRandom, poolStats } from '@secure-memory/memguard';
import { type FaultCall, testHooks } from '../src/testing.js';
import { thrownBy } from '../../testkit/test/thrown.js';
import { locate, peekSelf } from './helpers.js';

const { ENOMEM, EPERM } = constants.errno;

/** What a fault must lead to: success (the package recovers), or an error with these fields. */
export type Outcome = 'ok' | { code: string; errno?: number; syscall?: string };

export interface Fault {
  call: FaultCall;
  errno: number;
  /** The fault strikes the call of that kind with this index (0: the first) during `act`. */
  at: number;
}

export interface Phase<T> {
  name: string;
  /** Pool state the phase needs: 'cold' drains it, a number makes sure a free mapping for that size is there. */
  pool?: 'cold' | number;
  setup(): T;
  act(t: T): void;
  /** More checks, after the outcome was checked (and before teardown). */
  check?(t: T, failed: boolean, fault: Fault): void;
  teardown(t: T): void;
  /** Where the outcome differs from the table's default outcome. */
  outcome?(fault: Fault): Outcome | undefined;
}

export const lockedFactory = createFactory({ mode: 'locked' });
export const enclaveFactory = createFactory({ mode: 'enclave' });

/** Recognisable bytes: `n` of them from `seed`. */
export const known = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + 1) & 0xff);

export { thrownBy as thrown };

export const codeOf = (action: () => unknown): unknown => (thrownBy(action) as { code?: unknown } | undefined)?.code ?? 'no error';

/** The pool holds a free mapping for `size` bytes afterwards. */
export function warm(size: number): void {
  newEnclaveRandom(size); // its staging region goes back to the pool
}


/** Every operation that makes a seamed call, with what it needs around it. */
// biome-ignore lint/suspicious/noExplicitAny: one list holds phases of different state types
export const PHASES: Phase<any>[] = [];
function phase<T>(p: Phase<T>): void {
  PHASES.push(p);
}

type Made<T> = { result?: T };

// --- LockedBuffer constructors ------------------------------------------------------------------

phase<Made<LockedBuffer>>({
  name: 'newBuffer(64)',
  pool: 'cold',
  setup: () => ({}),
  act: (t) => {
    t.result = newBuffer(64);
  },
  check: (t, failed) => {
    if (!failed) expect(t.result?.equalTo(new Uint8Array(64))).toBe(true);
  },
  teardown: (t) => t.result?.destroy(),
});

phase<Made<LockedBuffer>>({
  name: 'newBuffer(64), with free mappings in the pool',
  pool: 64,
  setup: () => ({}),
  act: (t) => {
    t.result = newBuffer(64);
  },
  teardown: (t) => t.result?.destroy(),
  // A refused mlock drains the pool (which holds locked memory of its own) and tries once more.
  outcome: ({ call, errno }) => (call === 'mlock' && (errno === ENOMEM || errno === EPERM) ? 'ok' : undefined),
});

phase<Made<LockedBuffer> & { src: Uint8Array }>({
  name: 'newBufferFromBytes(src)',
  pool: 'cold',
  setup: () => ({ src: known(40, 20) }),
  act: (t) => {
    t.result = newBufferFromBytes(t.src);
  },
  check: (t, failed) => {
    // On failure the source is left as it was; on success it is wiped and the buffer frozen.
    expect(Buffer.from(t.src).equals(failed ? known(40, 20) : new Uint8Array(40))).toBe(true);
    if (!failed) expect(t.result?.isMutable).toBe(false);
  },
  teardown: (t) => t.result?.destroy(),
});

phase<Made<LockedBuffer>>({
  name: 'newBufferRandom(32)',
  pool: 'cold',
  setup: () => ({}),
  act: (t) => {
    t.result = newBufferRandom(32);
  },
  teardown: (t) => t.result?.destroy(),
});

// --- LockedBuffer methods -----------------------------------------------------------------------

phase<{ buf: LockedBuffer }>({
  name: 'freeze()',
  setup: () => {
    const buf = newBuffer(64);
    buf.copy(known(64, 21));
    return { buf };
  },
  act: (t) => t.buf.freeze(),
  check: (t, failed) => {
    expect(t.buf.isMutable).toBe(failed);
    expect(t.buf.equalTo(known(64, 21))).toBe(true);
  },
  teardown: (t) => t.buf.destroy(),
});

phase<{ buf: LockedBuffer }>({
  name: 'melt()',
  setup: () => ({ buf: newBufferFromBytes(known(64, 22)) }),
  act: (t) => t.buf.melt(),
  check: (t, failed) => {
    expect(t.buf.isMutable).toBe(!failed);
    expect(t.buf.equalTo(known(64, 22))).toBe(true);
  },
  teardown: (t) => t.buf.destroy(),
});

phase<{ buf: LockedBuffer }>({
  name: 'destroy() of a mutable LockedBuffer',
  setup: () => ({ buf: newBuffer(64) }),
  act: (t) => t.buf.destroy(),
  check: (t) => expect(t.buf.isAlive).toBe(false),
  teardown: (t) => t.buf.destroy(),
});

phase<{ buf: LockedBuffer; address: bigint }>({
  name: 'destroy() of a frozen LockedBuffer',
  setup: () => {
    const buf = newBufferFromBytes(known(64, 23));
    return { buf, address: locate(buf).address };
  },
  act: (t) => t.buf.destroy(),
  check: (t, failed, { call }) => {
    // A buffer that cannot be made writable to be wiped is unmapped unwiped: destroyed all the same.
    expect(t.buf.isAlive).toBe(false);
    if (call === 'munmap') expect(peekSelf(t.address)).toBe(0); // wiped, still mapped until the retry
    if (failed) expect(codeOf(() => t.buf.bytes())).toBe('ERR_SECRET_CLOSED');
  },
  teardown: (t) => t.buf.destroy(),
});

// --- The SecretFactory adapter, mode 'locked' -----------------------------------------------------

/**
 * The phases of `factory.new(src)` (named `newName`, from a cold pool: `src` is wiped only on
 * success) and `factory.createRandom(32)` (named `randomName`, from `randomPool`), for one mode.
 */
function creationPhases(factory: typeof lockedFactory, seed: number, newName: string, randomName: string, randomPool: 'cold' | number): void {
  phase<Made<ReturnType<typeof factory.new>> & { src: Uint8Array }>({
    name: newName,
    pool: 'cold',
    setup: () => ({ src: known(32, seed) }),
    act: (t) => {
      t.result = factory.new(t.src);
    },
    check: (t, failed) => {
      expect(Buffer.from(t.src).equals(failed ? known(32, seed) : new Uint8Array(32))).toBe(true);
      if (!failed) expect(t.result?.equals(known(32, seed))).toBe(true);
    },
    teardown: (t) => t.result?.close(),
  });
  phase<Made<ReturnType<typeof factory.createRandom>>>({
    name: randomName,
    pool: randomPool,
    setup: () => ({}),
    act: (t) => {
      t.result = factory.createRandom(32);
    },
    teardown: (t) => t.result?.close(),
  });
}

creationPhases(lockedFactory, 30, 'locked: factory.new(src)', 'locked: factory.createRandom(32)', 'cold');

phase<{ secret: ReturnType<typeof lockedFactory.new> }>({
  name: 'locked: withBytes (protectRead, protectIdle)',
  setup: () => ({ secret: lockedFactory.new(known(32, 31)) }),
  act: (t) => {
    expect(t.secret.withBytes((view) => Buffer.from(view).equals(known(32, 31)))).toBe(true);
  },
  check: (t, failed, { call, at }) => {
    if (failed && call === 'mprotect' && at === 1) {
      // protectIdle failed: the secret failed closed (wiped and released), as a purged one.
      expect(codeOf(() => t.secret.withBytes(() => 0))).toBe('ERR_SECRET_CLOSED');
    } else {
      expect(t.secret.equals(known(32, 31))).toBe(true);
    }
  },
  teardown: (t) => t.secret.close(),
});

phase<{ secret: ReturnType<typeof lockedFactory.new> }>({
  name: 'locked: close()',
  setup: () => ({ secret: lockedFactory.new(known(32, 32)) }),
  act: (t) => t.secret.close(),
  check: (t) => expect(t.secret.closed).toBe(true),
  teardown: (t) => t.secret.close(),
  // The wipe before free is best effort: free makes the pages writable again, and wipes them whole.
  outcome: ({ call }) => (call === 'mprotect' ? 'ok' : undefined),
});

// --- The SecretFactory adapter, mode 'enclave' ----------------------------------------------------

creationPhases(enclaveFactory, 40, 'enclave: factory.new(src), empty pool', 'enclave: factory.createRandom(32), warm pool', 32);

for (const pool of ['cold', 32] as const) {
  phase<{ secret: ReturnType<typeof enclaveFactory.new> }>({
    name: `enclave: withBytes (protectRead, protectIdle), ${pool === 'cold' ? 'empty' : 'warm'} pool`,
    pool,
    setup: () => ({ secret: enclaveFactory.new(known(32, 41)) }),
    act: (t) => {
      expect(t.secret.withBytes((view) => Buffer.from(view).equals(known(32, 41)))).toBe(true);
    },
    // The ciphertext is intact whatever failed: the secret stays usable.
    check: (t) => expect(t.secret.equals(known(32, 41))).toBe(true),
    teardown: (t) => t.secret.close(),
  });
}

/** An enclave-mode secret of `known(32, seed)`, anchored to a region of its own by a probe. */
function anchoredSecret(seed: number): { secret: ReturnType<typeof enclaveFactory.new> } {
  const secret = enclaveFactory.new(known(32, seed));
  locate(secret);
  return { secret };
}

phase<{ secret: ReturnType<typeof enclaveFactory.new> }>({
  name: 'enclave: withBytes of an anchored secret (its own PROT_NONE region)',
  setup: () => anchoredSecret(42),
  act: (t) => {
    expect(t.secret.withBytes((view) => Buffer.from(view).equals(known(32, 42)))).toBe(true);
  },
  check: (t) => expect(t.secret.equals(known(32, 42))).toBe(true),
  teardown: (t) => t.secret.close(),
});

phase<{ secret: ReturnType<typeof enclaveFactory.new> }>({
  name: 'enclave: close() of an anchored secret',
  setup: () => anchoredSecret(43),
  act: (t) => t.secret.close(),
  check: (t) => expect(t.secret.closed).toBe(true),
  teardown: (t) => t.secret.close(),
});

// --- Enclaves, the pool, Stream ---------------------------------------------------------------------

phase<Made<Enclave> & { src: Uint8Array }>({
  name: 'newEnclave(src)',
  setup: () => ({ src: known(32, 50) }),
  act: (t) => {
    t.result = newEnclave(t.src);
  },
  check: (t, failed) => expect(Buffer.from(t.src).equals(failed ? known(32, 50) : new Uint8Array(32))).toBe(true),
  teardown: () => {},
});

phase<Made<Enclave>>({
  name: 'newEnclaveRandom(32), empty pool',
  pool: 'cold',
  setup: () => ({}),
  act: (t) => {
    t.result = newEnclaveRandom(32);
  },
  teardown: () => {},
});

for (const pool of ['cold', 32] as const) {
  phase<Made<LockedBuffer> & { enclave: Enclave }>({
    name: `Enclave.open(), ${pool === 'cold' ? 'empty' : 'warm'} pool`,
    pool,
    setup: () => ({ enclave: newEnclave(known(32, 51)) }),
    act: (t) => {
      t.result = t.enclave.open();
    },
    check: (t, failed) => {
      if (!failed) expect(t.result?.equalTo(known(32, 51))).toBe(true);
      using again = t.enclave.open();
      expect(again.equalTo(known(32, 51))).toBe(true);
    },
    teardown: (t) => t.result?.destroy(),
  });
}

phase<{ buf: LockedBuffer }>({
  name: 'destroy() of an opened Enclave (back to the pool)',
  setup: () => ({ buf: newEnclave(known(32, 52)).open() }),
  act: (t) => t.buf.destroy(),
  check: (t) => expect(t.buf.isAlive).toBe(false),
  teardown: (t) => t.buf.destroy(),
});

phase<{ stream: Stream; target: Uint8Array }>({
  name: 'Stream.read(), warm pool',
  pool: 40,
  setup: () => {
    const stream = new Stream();
    stream.write(known(40, 53));
    return { stream, target: new Uint8Array(16) };
  },
  act: (t) => {
    t.stream.read(t.target);
  },
  check: (t, failed) => {
    // All or nothing: a failed read leaves the stream as it was.
    expect(t.stream.size).toBe(failed ? 40 : 24);
    const rest = t.stream.flush();
    expect(rest?.equalTo(known(40, 53).subarray(failed ? 0 : 16))).toBe(true);
    rest?.destroy();
  },
  teardown: () => {},
});

phase<Record<string, never>>({
  name: 'draining the pool (one free mapping)',
  setup: () => {
    testHooks.drainPool();
    warm(32);
    return {};
  },
  act: () => {
    testHooks.drainPool();
  },
  check: (_t, _failed, { call }) => {
    expect(poolStats().free).toBe(0);
    if (call === 'munmap') expect(poolStats().pendingUnmaps).toBe(1);
  },
  teardown: () => {},
});

