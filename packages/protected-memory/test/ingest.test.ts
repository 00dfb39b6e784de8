import { describe, expect, it } from 'vitest';
import { assertBuilt } from './helpers.js';
import { holdAndScan, pattern, windows } from '../../testkit/test/outside.js';

assertBuilt();
const module = '@secure-memory/protected-memory';
const SOURCES = ['new Uint8Array(32)', 'Buffer.alloc(32)', 'Buffer.allocUnsafe(32) (pool slice)'];

describe('ingestion leaves no copy of a small source (outside scan of /proc/<pid>/mem after close and GC)', () => {
  for (const options of [{ secretMemory: 'off' }, { secretMemory: 'off', packing: 'slab' }, {}]) {
    it(`finds 0 copies of each source: ${JSON.stringify(options)}`, async () => {
      const seed = (Math.random() * 2 ** 31) | 0;
      const needles = SOURCES.map((_, i) => windows(pattern(seed + i)));
      const { report, hits } = await holdAndScan('ingest.mjs', [module, JSON.stringify(options), String(seed), 'clean'], needles);
      expect(report).toEqual({ wiped: true, inUse: 0 });
      expect(Object.fromEntries(SOURCES.map((s, i) => [s, hits[i]]))).toEqual(Object.fromEntries(SOURCES.map((s) => [s, 0])));
    });
  }

  it('the control: a source whose .buffer was read first leaves a copy the scan finds', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const needles = SOURCES.map((_, i) => windows(pattern(seed + i)));
    const { report, hits } = await holdAndScan('ingest.mjs', [module, JSON.stringify({ secretMemory: 'off' }), String(seed), 'control'], needles);
    expect(report).toEqual({ wiped: true, inUse: 0 });
    // The abandoned heap copies (the scan's positive control); the garbage collector may reuse one of them, so at least one.
    expect((hits[0] as number) + (hits[1] as number)).toBeGreaterThan(0);
  });
});
