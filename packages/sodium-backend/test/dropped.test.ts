// A secret dropped without close() is wiped and released by the garbage collector (issue #13 item 8).
import { describe, expect, it } from 'vitest';
import { holdAndScan, pattern, windows } from '../../testkit/test/outside.js';

const module = '@secure-memory/sodium';

describe('secrets dropped without close()', () => {
  it.each([['lock: require', {}]])('%s: wiped and released after GC, with a warning; stats and VmLck back; an outside scan finds 0 copies', async (_mode, options) => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const needles = [0, 1, 2].map((i) => windows(pattern(seed + i)));
    const { report, hits } = await holdAndScan('dropped.mjs', [module, JSON.stringify(options), String(seed)], needles);
    expect(report).toEqual({
      during: 3,
      lockedDuring: true,
      inUse: 0,
      lockedBytes: 0,
      vmLckBack: true,
      warnings: ['SECURE_MEMORY_UNRELEASED', 'SECURE_MEMORY_UNRELEASED', 'SECURE_MEMORY_UNRELEASED'],
    });
    expect(hits).toEqual([0, 0, 0]);
  });
});
