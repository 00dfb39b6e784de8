import { describe, expect, it } from 'vitest';
import { holdAndScan, pattern, windows } from '../../testkit/test/outside.js';

const module = '@secure-memory/sodium';
const SOURCES = ['new Uint8Array(32)', 'Buffer.alloc(32)', 'Buffer.allocUnsafe(32) (pool slice)'];

describe('ingestion leaves no copy of a small source (outside scan of /proc/<pid>/mem after close and GC)', () => {
  it('finds 0 copies of each source', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const needles = SOURCES.map((_, i) => windows(pattern(seed + i)));
    const { report, hits } = await holdAndScan('ingest.mjs', [module, '{}', String(seed), 'clean'], needles);
    expect(report).toEqual({ wiped: true, inUse: 0 });
    expect(Object.fromEntries(SOURCES.map((s, i) => [s, hits[i]]))).toEqual(Object.fromEntries(SOURCES.map((s) => [s, 0])));
  });

  it('the control: a source whose .buffer was read first leaves a copy the scan finds', async () => {
    const seed = (Math.random() * 2 ** 31) | 0;
    const needles = SOURCES.map((_, i) => windows(pattern(seed + i)));
    const { report, hits } = await holdAndScan('ingest.mjs', [module, '{}', String(seed), 'control'], needles);
    expect(report).toEqual({ wiped: true, inUse: 0 });
    // The abandoned heap copies (the scan's positive control); the garbage collector may reuse one of them, so at least one.
    expect((hits[0] as number) + (hits[1] as number)).toBeGreaterThan(0);
  });
});
