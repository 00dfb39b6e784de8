// Secrets made in a worker thread are wiped and released when the worker ends (issue #13 item 5):
// by core's exit event after process.exit(), and after terminate() by sodium-native's finalizers,
// which Node runs at the worker's teardown (they sodium_free: zero, munlock, munmap). As nobody
// under a 64 KiB RLIMIT_MEMLOCK.
import { unprivileged } from '@secure-memory/testkit';
import { describe, expect, it } from 'vitest';
import { holdAndScan, pattern, windows } from '../../testkit/test/outside.js';

const module = '@secure-memory/sodium';
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('secrets of a worker thread', () => {
  it.each(['exit', 'terminate'])('are wiped and released when the worker ends by %s; VmLck and stats back; 0 copies in an outside scan', async (how) => {
    const seed = (Math.random() * 2 ** 30) | 0;
    // 2 secrets a worker: each worker's own sentinel allocation takes a locked page too.
    const needles = Array.from({ length: 16 }, (_, i) => windows(pattern(seed + i)));
    const wrap = unprivileged([], { memlock: 64 * 1024 });
    const { report, hits } = await holdAndScan('worker-end.mjs', [module, '{}', how, String(seed), '2'], needles, [], wrap);
    expect(report).toMatchObject({ made: [2, 2, 2, 2], afterEnd: 0, created: 32, inUse: 0, vmLck: 0 });
    expect(report['lockedWhileHeld']).toBeGreaterThan(0);
    expect(hits).toEqual(new Array(16).fill(0));
  });
});
