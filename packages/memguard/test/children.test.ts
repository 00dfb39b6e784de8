// Behaviour that needs its own process: memory scans from outside, signals, exit paths, faults,
// the garbage collector, and RLIMIT_MEMLOCK as an unprivileged user. The fixtures import the built
// package (dist/): build first.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findMapping, readMappings, scanMemory, tryReadRegion, unprivileged } from '@secure-memory/testkit';
import type { MemlockReport } from '../../testkit/test/memlock.js';
import { PAGE, assertBuilt, fixture, hasSetpriv, isRoot, lastJson, runFixture } from './helpers.js';

beforeAll(assertBuilt);

type Event = { event: string } & Record<string, unknown>;

/** A fixture running in the background, driven by stdin lines and awaited by event name. */
class Session {
  readonly child: ChildProcess;
  readonly events: Event[] = [];
  readonly #waiters: { name: string; resolve: (e: Event) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Everything the child wrote to its fd 3, when fd 3 is a pipe it writes to. */
  readonly fd3: Promise<Buffer>;

  constructor(name: string, args: string[]) {
    this.child = spawn(process.execPath, [fixture(name), ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 600_000);
    let pending = '';
    let stderr = '';
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const event = JSON.parse(line) as Event;
        this.events.push(event);
        for (const w of this.#waiters.filter((w) => w.name === event.event)) w.resolve(event);
      }
    });
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const fd3 = this.child.stdio[3] as Readable;
    this.fd3 = new Promise((resolve) => {
      const parts: Buffer[] = [];
      fd3.on('data', (b: Buffer) => parts.push(b));
      fd3.on('end', () => resolve(Buffer.concat(parts)));
      fd3.on('error', () => resolve(Buffer.concat(parts)));
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stderr });
      });
    });
  }

  /** The first event of that name (already seen or still to come); rejects if the child exits first. */
  next(name: string): Promise<Event> {
    const seen = this.events.find((e) => e.event === name);
    if (seen !== undefined) return Promise.resolve(seen);
    return Promise.race([
      new Promise<Event>((resolve) => this.#waiters.push({ name, resolve })),
      this.exited.then((o) => {
        throw new Error(`the child exited (${o.code}, ${o.signal}) before "${name}": ${o.stderr}`);
      }),
    ]);
  }

  send(line: string): void {
    this.child.stdin?.write(`${line}\n`);
  }

  get pid(): number {
    return this.child.pid as number;
  }
}

/** The addresses of the hits, as hex strings, for readable failures. */
const where = (hits: { address: bigint }[]): string[] => hits.map((h) => `0x${h.address.toString(16)}`);

describe('reading a secret from a file descriptor: the plaintext is only in the locked mapping', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'memguard-fd-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  /** A file `name` (mode 0600) of `length` random bytes. */
  const keyFile = (name: string, length: number): { key: Buffer; path: string } => {
    const key = randomBytes(length);
    const path = join(dir, name);
    writeFileSync(path, key, { mode: 0o600 });
    return { key, path };
  };

  it('newBufferFromFd on a key file: one hit, at the buffer; none after destroy', async () => {
    const { key, path } = keyFile('key', 64);
    const session = new Session('fd-read.mjs', ['file', path, '64']);
    const ready = await session.next('ready');
    expect(ready).toMatchObject({ size: 64, isMutable: false });
    const scan = scanMemory(session.pid, [key]);
    expect(where(scan.hits)).toEqual([ready.address]);
    expect(scan.hits[0]?.mapping.vmFlags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    session.send('destroy');
    await session.next('destroyed');
    expect(scanMemory(session.pid, [key]).hits).toEqual([]);
    session.send('exit');
    expect((await session.exited).code).toBe(0);
  });

  it('newBufferFromFd on a short file with { partial: true } keeps what was read, in a buffer of that size', async () => {
    const { key, path } = keyFile('short', 40);
    const session = new Session('fd-read.mjs', ['file', path, '100', 'partial']);
    const ready = await session.next('ready');
    expect(ready.size).toBe(40);
    expect(where(scanMemory(session.pid, [key]).hits)).toEqual([ready.address]);
    session.send('exit');
    await session.exited;
  });

  it('newBufferFromFd(fd, 32) on a 20-byte file is ERR_INVALID_SIZE (a truncated key), and what was read is wiped', async () => {
    const { key, path } = keyFile('truncated', 20);
    const session = new Session('fd-read.mjs', ['file', path, '32']);
    const refused = await session.next('refused');
    expect(refused.code).toBe('ERR_INVALID_SIZE');
    expect(scanMemory(session.pid, [key]).hits).toEqual([]);
    session.send('exit');
    await session.exited;
  });

  it('newBufferFromFdUntil on a pipe reads up to the delimiter and no further; the growing buffers leave no copy', async () => {
    // Longer than a page, so the buffer grows; no byte is the delimiter.
    const secret = Buffer.from(Array.from(randomBytes(5000), (b) => (b === 0x0a ? 0x0b : b)));
    const session = new Session('fd-read.mjs', ['until']);
    const pipe = session.child.stdio[3] as Writable;
    pipe.end(Buffer.concat([secret, Buffer.from('\nTRAILER')]));
    const ready = await session.next('ready');
    expect(ready).toMatchObject({ size: 5000, isMutable: false, rest: 'TRAILER' });
    const scan = scanMemory(session.pid, [secret, secret.subarray(0, 32)]);
    // The whole secret once, and its first 32 bytes only there too: the intermediate buffers were wiped.
    expect(where(scan.hits.filter((h) => h.needle === 0))).toEqual([ready.address]);
    expect(where(scan.hits.filter((h) => h.needle === 1))).toEqual([ready.address]);
    session.send('destroy');
    await session.next('destroyed');
    expect(scanMemory(session.pid, [secret.subarray(0, 32)]).hits).toEqual([]);
    session.send('exit');
    await session.exited;
  });
});

describe('signals: the handler runs, every buffer and secret of both modes is purged, the exit code is conventional', () => {
  it.each([
    ['interrupt', 'SIGINT', 130],
    ['term', 'SIGTERM', 143],
    ['term-throws', 'SIGTERM', 143],
  ] as const)('%s: on %s, exit code %i, nothing left in memory', async (mode, signal, exitCode) => {
    const session = new Session('signal.mjs', [mode]);
    await session.next('ready');
    const plaintext = await session.fd3;
    // frozen and mutable LockedBuffers, a locked-mode secret, an enclave-mode secret during an
    // access, an opened Enclave
    const sizes = [32, 64, 48, 40, 56];
    expect(plaintext.byteLength).toBe(sizes.reduce((a, b) => a + b));
    const needles = sizes.map((size, i) => {
      const start = sizes.slice(0, i).reduce((a, b) => a + b, 0);
      return plaintext.subarray(start, start + size);
    });
    // The control: before the signal, the scan finds each secret.
    expect(new Set(scanMemory(session.pid, needles).hits.map((h) => h.needle))).toEqual(new Set([0, 1, 2, 3, 4]));
    session.child.kill(signal);
    const exit = await session.next('exit');
    expect(exit).toMatchObject({
      code: exitCode,
      alive: [false, false, false],
      // Views are not detached (a byteLength-0 view is an empty key to node:crypto): their memory is
      // wiped and inaccessible, which the scan below shows.
      viewLengths: [32, 64, 56, 40],
      buffers: { buffers: 0, lockedBytes: 0 },
      factory: { buffers: 0, lockedBytes: 0 },
      enclaveFactory: { buffers: 0, lockedBytes: 0 },
      pool: { free: 0, freeLockedBytes: 0, pendingUnmaps: 0 },
      access: ['ERR_SECRET_CLOSED', 'ERR_SECRET_CLOSED'], // the purge closed the secret in its access too
    });
    if (mode !== 'interrupt') expect(session.events.find((e) => e.event === 'handler')).toMatchObject({ signal, aliveInHandler: true });
    // The process is still there (blocked in its exit listener): nothing of the plaintext is left.
    expect(scanMemory(session.pid, needles).hits).toEqual([]);
    session.send('go');
    expect(await session.exited).toMatchObject({ code: exitCode, signal: null });
  });
});

describe('exit paths', () => {
  // Each way out purges first: the fixture reports from its last exit listener.
  it.each([
    { title: 'safeExit(3) purges, then exits with 3', how: 'safeExit', code: 3, stderr: undefined, report: { viewLength: 32 } },
    { title: 'safePanic(error) purges, prints the error and exits with 1', how: 'safePanic', code: 1, stderr: 'Error', report: {} },
    { title: 'a plain process.exit is purged by the exit hook', how: 'plain', code: 0, stderr: undefined, report: { viewLength: 32 } },
  ])('$title', ({ how, code, stderr, report }) => {
    const result = runFixture('exit.mjs', [how]);
    expect(result.status).toBe(code);
    if (stderr !== undefined) expect(result.stderr).toContain(stderr);
    expect(lastJson(result)).toMatchObject({ event: 'exit', code, alive: false, buffers: 0, secrets: 0, ...report });
  });

  it('safeExit with a bad code throws and purges nothing', () => {
    const result = runFixture('exit.mjs', ['bad-code']);
    expect(result.stdout).toContain('"event":"refused","code":"ERR_OUT_OF_RANGE","alive":true');
    expect(result.status).toBe(0);
  });
});

describe('no side effects at import', () => {
  it('import changes nothing; the first buffer installs one exit hook; catchSignal replaces itself; disableCoreDumps sets RLIMIT_CORE 0', () => {
    const result = runFixture('lifecycle.mjs', [], { wrap: ['prlimit', '--core=1048576:unlimited', '--'] });
    const report = lastJson<Record<string, Record<string, unknown>>>(result);
    expect(report.afterImport).toEqual(report.before);
    expect(report.before?.core).toEqual(['1048576', 'unlimited']);
    expect(report.afterFactory?.listeners).toEqual(report.before?.listeners);
    const base = report.before?.listeners as { exit: number; sigint: number; sigterm: number };
    expect(report.afterBuffers?.listeners).toEqual({ ...base, exit: base.exit + 1 });
    expect(report.afterCatch?.listeners).toEqual({ exit: base.exit + 1, sigint: base.sigint + 1, sigterm: base.sigterm + 1 });
    expect(report.badSignal).toBe('ERR_INVALID_ARG_VALUE');
    expect(report.afterDisable?.core).toEqual(['0', '0']);
  });
});

/** Runs segv.mjs with `args`: it reaches the touch, and the touch kills it by SIGSEGV (it never survives). */
function expectFault(...args: string[]): void {
  const result = runFixture('segv.mjs', args);
  expect(result.stdout).toContain('touching');
  expect(result.stdout).not.toContain('survived');
  expect(result.signal).toBe('SIGSEGV');
}

describe('the MMU enforces read-only; kept views are revoked', () => {
  it('control: a write to a mutable buffer survives', () => {
    const result = runFixture('segv.mjs', ['control']);
    expect(result.signal).toBeNull();
    expect(result.stdout).toContain('survived 1');
  });

  it('a write through a frozen buffer kills the process by SIGSEGV', () => {
    expectFault('frozen-write');
  });

  it.each(['enclave', 'locked'])("%s mode: a write through a secret's view during its access kills the process by SIGSEGV", (mode) => {
    expectFault('access-write', mode);
  });

  it.each(['enclave', 'locked'])('%s mode: a view kept past its access faults (its memory is PROT_NONE, never reused while it lives)', (mode) => {
    expectFault('kept-view', mode);
  });

  it('a write through the buffer an Enclave opened into (frozen) kills the process by SIGSEGV', () => {
    expectFault('open-write');
  });
});

describe('the garbage collector releases what nobody destroyed', () => {
  it('with debug: released, and a warning names the stack where each was made', () => {
    const report = lastJson<{ before: Record<string, number>; after: Record<string, number>; pooled: number; warnings: Record<string, unknown>[] }>(
      runFixture('gc.mjs', ['debug'], { node: ['--expose-gc'] }),
    );
    // One LockedBuffer, one secret, and one buffer opened from an Enclave (which goes back to the pool).
    expect(report.before).toEqual({ buffers: 2, secrets: 1 });
    expect(report.after).toEqual({ buffers: 0, secrets: 0, lockedBytes: 0 });
    expect(report.pooled).toBeGreaterThanOrEqual(1);
    expect(report.warnings).toEqual([
      { name: 'SecureMemoryWarning', code: 'MEMGUARD_UNRELEASED', fromHere: true },
      { name: 'SecureMemoryWarning', code: 'MEMGUARD_UNRELEASED', fromHere: true },
    ]);
  });

  it('without debug: released silently', () => {
    const report = lastJson<{ after: Record<string, number>; warnings: unknown[] }>(runFixture('gc.mjs', ['quiet'], { node: ['--expose-gc'] }));
    expect(report.after).toEqual({ buffers: 0, secrets: 0, lockedBytes: 0 });
    expect(report.warnings).toEqual([]);
  });
});

describe("enclave mode: sealed boxes packed into shared slabs", () => {
  it('the slots of secrets collected without close() are taken back before a slab is added; close frees them at once', () => {
    const report = lastJson<{ afterDrop: number; afterAgain: number; afterClose: number; end: number; readable: boolean }>(
      runFixture('arena.mjs', [], { node: ['--expose-gc'] }),
    );
    const box = 32 + 28;
    expect(report.afterDrop).toBe(3001 * box);
    // the 3000 dropped secrets' slots were swept (and reused): only the live ones count
    expect(report.afterAgain).toBe(3001 * box);
    expect(report.afterClose).toBe(box);
    expect(report.end).toBe(0);
    expect(report.readable).toBe(true);
  });
});

describe.skipIf(!isRoot || !hasSetpriv)('RLIMIT_MEMLOCK of 8 MiB, as nobody', () => {
  const EIGHT_MIB = 8 * 1024 * 1024;
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'memguard-memlock-'));
    chmodSync(tmp, 0o777);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each(['buffer', 'secret'])('%s: 32-byte allocations until ERR_MEMLOCK_LIMIT; the process and the others survive', (kind) => {
    const result = runFixture('memlock.mjs', [kind], { wrap: unprivileged([], { memlock: EIGHT_MIB }) });
    const report = lastJson<MemlockReport>(result);
    expect(report.uid).toBe(65534);
    // One locked page per 32-byte buffer (the guard pages are not locked).
    expect(report.made).toBe(EIGHT_MIB / PAGE);
    expect(report).toMatchObject({ code: 'ERR_MEMLOCK_LIMIT', requested: PAGE, limit: EIGHT_MIB, syscall: 'mlock' });
    expect(report.statsAtLimit).toMatchObject({ lockedBytes: EIGHT_MIB });
    expect(report.statsAfterRefusals).toEqual(report.statsAtLimit);
    expect(report.repeatedCodes).toEqual(['ERR_MEMLOCK_LIMIT']);
    expect(report.vmGrowth).toBeLessThan(16 * 1024 * 1024);
    expect(report.intact).toBe(report.made);
    expect(report.replacement).toBe('ok');
  });
});

// Root, so that RLIMIT_MEMLOCK does not stop it first.
describe.skipIf(!isRoot)('vm.max_map_count', () => {
  it('buffers stop with ERR_MAP_LIMIT while a reserve of mappings is left; the process keeps mapping memory', () => {
    const report = lastJson<{ max: number; made: number; code?: string; requested?: number; limit?: number; heapWorks: boolean; intact: number; stats: Record<string, number> }>(
      runFixture('maplimit.mjs'),
    );
    const reserve = Math.max(1024, Math.floor(report.max / 8));
    expect(report.made).toBeGreaterThan(1000);
    expect(report).toMatchObject({ code: 'ERR_MAP_LIMIT', limit: report.max - reserve, heapWorks: true });
    expect(report.requested).toBeGreaterThan(report.limit as number);
    expect(report.intact).toBe(report.made);
    expect(report.stats).toEqual({ buffers: 0, lockedBytes: 0, mappedBytes: 0, leaked: 0 });
  });
});

describe('Enclaves, seen from outside', () => {
  it('idle: the plaintext is nowhere; opened: once, in a locked, undumped, wiped-on-fork mapping; destroyed: nowhere; the key state cannot be read', async () => {
    const session = new Session('enclave-hold.mjs', []);
    const ready = await session.next('ready');
    expect(ready.wiped).toBe(true);
    const plaintext = await session.fd3;
    expect(plaintext.byteLength).toBe(64);
    const needles = [plaintext, plaintext.subarray(0, 16)];
    expect(scanMemory(session.pid, needles).hits).toEqual([]);
    session.send('open');
    const opened = await session.next('opened');
    const scan = scanMemory(session.pid, needles);
    expect(where(scan.hits.filter((h) => h.needle === 0))).toEqual([opened.address]);
    expect(scan.hits.every((h) => h.address >= BigInt(opened.address as string))).toBe(true);
    expect(scan.hits[0]?.mapping.vmFlags).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    expect(scan.hits[0]?.mapping.perms).toBe('r--p');
    session.send('destroy');
    await session.next('destroyed');
    expect(scanMemory(session.pid, needles).hits).toEqual([]);
    if (ready.storage === 'secret-memory') {
      const key = readMappings(session.pid).find((m) => m.path.startsWith('/secretmem'));
      expect(key).toBeDefined();
      expect(key?.vmFlags).toEqual(expect.arrayContaining(['lo', 'dd', 'dc']));
      const mapping = findMapping(readMappings(session.pid), (key as { start: bigint }).start);
      expect(tryReadRegion(session.pid, (mapping as { start: bigint }).start, 64)).toBeDefined(); // the read fails
    }
    session.send('exit');
    expect((await session.exited).code).toBe(0);
  });

  it('the re-key timer never holds the process open: a script that makes an Enclave and returns exits on its own', () => {
    const result = runFixture('enclave-exit.mjs', ['return']);
    expect(result.signal).toBeNull(); // runFixture kills it after 60 s
    expect(result.status).toBe(0);
    expect(lastJson(result)).toMatchObject({ event: 'done' });
  });

  it('while the event loop lives, the timer re-keys (500 ms), and the derived key is forgotten after each turn', () => {
    const result = runFixture('enclave-exit.mjs', ['linger']);
    expect(result.status).toBe(0);
    const report = lastJson<{ rekeys: number; derived: boolean }>(result);
    expect(report.rekeys).toBeGreaterThanOrEqual(1);
    expect(report.derived).toBe(false);
  });
});

interface CapacityReport {
  uid: number;
  mode: string;
  made: number;
  code?: string;
  intact: number;
  atRest: Record<string, number>;
  heapUsed: number;
  rss: number;
  createMs: number;
  readMs: number;
}

describe.skipIf(!isRoot || !hasSetpriv)('capacity: live enclave-mode secrets are bounded by the heap, not by RLIMIT_MEMLOCK', () => {
  const EIGHT_MIB = 8 * 1024 * 1024;

  it('the key state (36 KiB) is charged to RLIMIT_MEMLOCK: under 16 KiB sealing is refused with ERR_MEMLOCK_LIMIT, the process lives on', () => {
    const report = lastJson<Record<string, unknown>>(runFixture('memlock-enclave.mjs', [], { wrap: unprivileged([], { memlock: 16 * 1024 }) }));
    expect(report).toMatchObject({ uid: 65534, sealed: 'ERR_MEMLOCK_LIMIT', limit: 16 * 1024, bufferAfter: 32 });
    expect(report.requested).toBeGreaterThanOrEqual(36 * 1024);
  });

  it('under 64 KiB: the key and the open buffers share the limit; open buffers stop with ERR_MEMLOCK_LIMIT, and once destroyed the pool serves again', () => {
    const report = lastJson<Record<string, unknown>>(runFixture('memlock-enclave.mjs', [], { wrap: unprivileged([], { memlock: 64 * 1024 }) }));
    // 64 KiB - 36 KiB of key state = 7 pages: 7 open buffers of one page each.
    expect(report).toMatchObject({ uid: 65534, sealed: 'ok', openCode: 'ERR_MEMLOCK_LIMIT', opened: (64 - 36) / (PAGE / 1024), intact: (64 - 36) / (PAGE / 1024) });
    expect(report).toMatchObject({ reopened: true, fromPool: true, lockedBuffers: 0 });
  });

  it('as nobody under 8 MiB of memlock: 1,000,000 secrets of 32 bytes, all read back, none of them locked at rest', { timeout: 900_000 }, () => {
    const COUNT = 1_000_000;
    const result = runFixture('capacity.mjs', [String(COUNT)], {
      wrap: unprivileged([], { memlock: EIGHT_MIB }),
      node: ['--max-old-space-size=3072'],
      timeout: 600_000,
    });
    const report = lastJson<CapacityReport>(result);
    expect(report.uid).toBe(65534);
    expect(report).toMatchObject({ mode: 'enclave', made: COUNT, intact: COUNT });
    expect(report.code).toBeUndefined();
    // Locked mode stops at 2048 (one locked page each); at rest an enclave-mode secret locks nothing.
    expect(report.atRest).toMatchObject({ lockedBytes: 0, buffers: 0, inUse: COUNT, ciphertextBytes: COUNT * (32 + 28) });
    // The process locks only the key state and the pool's few regions.
    expect(report.atRest.vmLck).toBeLessThan(256 * 1024);
    console.log(
      `capacity: ${report.made} enclave-mode secrets as nobody under 8 MiB memlock: made in ${report.createMs} ms, read back in ${report.readMs} ms; heap ${Math.round(report.heapUsed / 2 ** 20)} MiB, rss ${Math.round(report.rss / 2 ** 20)} MiB, locked ${report.atRest.vmLck} bytes`,
    );
  });
});
