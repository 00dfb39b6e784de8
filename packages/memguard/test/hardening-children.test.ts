// Issue #13 (hardening), in child processes: faults, limits, other Node versions, scans from outside.
// The fixtures import the built package (dist/): build first.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { scanMemory } from '@secure-memory/testkit';
import { assertBuilt, fixture, lastJson, runFixture } from './helpers.js';

/** The 32 bytes the ingest fixture makes from `seed` (xorshift32, as there). */
function seeded(seed: number): Buffer {
  let state = seed >>> 0 || 1;
  const out = Buffer.alloc(32);
  for (let i = 0; i < 32; i++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[i] = state & 0xff;
  }
  return out;
}

/**
 * Runs a fixture that prints `{ event: 'ready', ... }` and waits for 'exit' on stdin; scans it from
 * outside (/proc/<pid>/mem) for each needle while it waits.
 */
async function scanWhileReady(name: string, args: string[], needles: Uint8Array[], node: string[] = ['--expose-gc']): Promise<{ ready: Record<string, unknown>; hits: number }> {
  const child = spawn(process.execPath, [...node, fixture(name), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const timer = setTimeout(() => child.kill('SIGKILL'), 50_000);
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
