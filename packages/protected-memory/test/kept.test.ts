// A view kept past close() never reads another secret, whatever lands at its address later (issue #13 item 4).
import { describe, expect, it } from 'vitest';
import { assertBuilt, runFixture } from './helpers.js';

assertBuilt();
const module = '@secure-memory/protected-memory';

describe.each([
  ['page', { secretMemory: 'off' }],
  ['secret-memory', { secretMemory: 'auto' }],
  ['slab', { secretMemory: 'off', packing: 'slab' }],
])('%s mode: a view kept past close()', (mode, options) => {
  it('faults or reads zeros during later secrets\' accesses: never their bytes, never an empty view', () => {
    const child = runFixture('kept.mjs', [module, JSON.stringify(options)]);
    expect(child.stdout).toContain('"event":"reading","keptLength":32');
    if (mode === 'slab' && child.signal === null) {
      // The retired slot stays taken: read while a page-mate is open, the kept view reads its own wiped slot.
      expect(child.status, child.stderr).toBe(0);
      const result = JSON.parse(child.stdout.trim().split('\n').at(-1) as string) as Record<string, number>;
      expect(result).toEqual({ matched: 0, zeros: 64, shortest: 32, keptLength: 32 });
    } else {
      // page, secret-memory, and a slab whose only slot was retired: the addresses are an
      // inaccessible reservation, and the read faults, loudly.
      expect(child.signal).toBe('SIGSEGV');
      expect(child.stdout).not.toContain('matched');
    }
  });
});
