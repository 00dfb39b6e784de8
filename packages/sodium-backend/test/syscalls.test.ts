// The system calls of new+close, counted from outside under strace: libsodium's own sequence (10
// calls), the PROT_NONE after the copy (noAccessWhenIdle), the PROT_READ|PROT_WRITE of the wipe at
// close and the munlock that gives the lock back at once (13 in all); no trial
// mapping (nothing here can refuse one for want of memory: RLIMIT_AS is unlimited) and no second
// mlock or madvise (libsodium's held: errno stayed 0). Skipped where strace is not installed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const haveStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;
const FIXTURE = fileURLToPath(new URL('./fixtures/new-close-calls.mjs', import.meta.url));

const STEADY = fileURLToPath(new URL('./fixtures/steady-batches.mjs', import.meta.url));

/** Calls by name between the fixture's marks, for `n` new+read+close. */
function callsBetweenMarks(n: number, prlimit: string[] = []): Record<string, number> {
  return traceBetweenMarks([FIXTURE, String(n)], prlimit);
}

/** Calls by name (and `maps`: the opens of /proc/self/maps) between a fixture's marks. */
function traceBetweenMarks(args: string[], prlimit: string[] = []): Record<string, number> {
  const dir = mkdtempSync(join(tmpdir(), 'sodium-calls-'));
  try {
    const out = join(dir, 'trace');
    const r = spawnSync('strace', ['-qq', '-o', out, ...prlimit, process.execPath, ...args], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const counts: Record<string, number> = {};
    let on = false;
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      if (line.includes('/secure-memory-sodium-mark/')) {
        on = line.includes('/start');
        continue;
      }
      const name = /^([a-z_0-9]+)\(/.exec(line)?.[1];
      if (on && name !== undefined) counts[name] = (counts[name] ?? 0) + 1;
      if (on && name === 'openat' && line.includes('"/proc/self/maps"')) counts.maps = (counts.maps ?? 0) + 1;
    }
    return counts;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.runIf(haveStrace && process.platform === 'linux')('new+close, counted under strace', () => {
  it('maps once, locks once and advises once per secret (no trial mapping, no second mlock or madvise)', () => {
    const n = 50;
    const c = callsBetweenMarks(n);
    expect(c.mmap).toBe(n);
    expect(c.munmap).toBe(n);
    expect(c.mlock).toBe(n);
    // ours at close, and libsodium's in its deferred free
    expect(c.munlock).toBe(2 * n);
    // libsodium's MADV_DONTDUMP at malloc and MADV_DODUMP at free
    expect(c.madvise).toBe(2 * n);
    // libsodium: 2 guards NONE, the base page READ, all RW at free; ours: NONE after the copy, RW for the wipe
    expect(c.mprotect).toBe(6 * n);
  });

  it('counts /proc/self/maps at most once for steady batches of new+close among 1,000 live secrets: frees give their share of the credit back', () => {
    // 20 batches of 300 (1,200 mappings each, pending until libsodium's free on the next turn):
    // without the credit coming back, the budget's credit (about 900 allocations here) ran out every
    // few batches and a count followed.
    const c = traceBetweenMarks([STEADY, '1000', '20', '300']);
    expect(c.mmap).toBeGreaterThanOrEqual(20 * 300); // libsodium's, and V8's own
    expect(c.maps ?? 0).toBeLessThanOrEqual(1);
  });

  it('asks the kernel first (a trial mapping) where a mapping can be refused for want of memory: a finite RLIMIT_AS', () => {
    const c = callsBetweenMarks(20, ['prlimit', '--as=68719476736']);
    expect(c.mmap).toBe(2 * 20); // the trial mapping and libsodium's
    expect(c.munmap).toBe(2 * 20);
  });
});
