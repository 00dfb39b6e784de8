// Secrets made in a worker thread are wiped and released when the worker ends (issue #13 item 5):
// by its `exit` event (process.exit(), or a normal end), or, after terminate(), by the thread that
// spawned it at the Worker's `exit` event (see src/threads.ts). As nobody under a 64 KiB RLIMIT_MEMLOCK that the
// workers' 16 secrets fill: the main thread's createRandom(32) must still succeed.
import { unprivileged } from '@secure-memory/testkit';
import { describe, expect, it } from 'vitest';
import { assertBuilt, hasSetpriv, isRoot } from './helpers.js';
import { holdAndScan, pattern, windows } from '../../testkit/test/outside.js';

assertBuilt();
const module = '@secure-memory/protected-memory';
const LIMIT = 64 * 1024;

describe.skipIf(!isRoot || !hasSetpriv).each([
  ['page', { secretMemory: 'off' }],
  ['slab', { secretMemory: 'off', packing: 'slab' }],
])('%s mode: secrets of a worker thread', (mode, options) => {
  it.each(['exit', 'terminate'])('are wiped and released when the worker ends by %s; VmLck and stats back; 0 copies in an outside scan', async (how) => {
    const seed = (Math.random() * 2 ** 30) | 0;
    const needles = Array.from({ length: 16 }, (_, i) => windows(pattern(seed + i)));
    const wrap = unprivileged([], { memlock: LIMIT });
    const { report, hits } = await holdAndScan('worker-end.mjs', [module, JSON.stringify(options), how, String(seed)], needles, [], wrap);
    expect(report).toMatchObject({ made: [4, 4, 4, 4], created: 32, inUse: 0, vmLck: 0 });
    expect(report['lockedWhileHeld']).toBeGreaterThan(0);
    // process.exit() runs the worker's exit event, which releases everything at once; after
    // terminate() no JavaScript runs in the worker, and the main thread reaps it at the Worker's
    // exit event: by the time the application sees that event, the memory is back.
    expect(report['afterEnd']).toBe(0);
    expect(hits).toEqual(new Array(16).fill(0));
  });
});
