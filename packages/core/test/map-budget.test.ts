// The mapping budget counts /proc/self/maps (a read of the whole file) only when its credit runs
// out; frees the backend made itself give their share back, so that a steady rate of new and close
// counts once, and the budget still never passes what a count allowed.
import * as fs from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';

vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  return { ...real, readFileSync: vi.fn(real.readFileSync) };
});

const { MapBudget, readMapCount, readMaxMapCount, mapReserve, MAP_BUDGET_CONCURRENCY } = await import('../src/limits.js');

/** How many times /proc/self/maps was read since the spy was last cleared. */
function mapsReads(): number {
  return vi.mocked(fs.readFileSync).mock.calls.filter(([path]) => path === '/proc/self/maps').length;
}

describe('MapBudget', () => {
  afterEach(() => vi.mocked(fs.readFileSync).mockClear());

  it('counts once for a steady rate of new and close: each free gives its share back', () => {
    const budget = new MapBudget('test', 4);
    for (let i = 0; i < 20_000; i += 1) {
      budget.assertHeadroom();
      budget.removed();
    }
    expect(mapsReads()).toBe(1);
  });

  it('counts again once allocations without frees use up what the count granted; frees never raise the credit above the grant', () => {
    const max = readMaxMapCount() as number;
    const reserve = mapReserve(max);
    const perAllocation = 4;
    // What a count grants now (the process may map a few more pages meanwhile: margins of 2 below).
    const grantNow = (): number => {
      const headroom = max - reserve - (readMapCount() as number);
      return Math.min(headroom, Math.floor((headroom + reserve) / (MAP_BUDGET_CONCURRENCY + 1)));
    };
    for (const freesFirst of [0, 100]) {
      const budget = new MapBudget('test', perAllocation);
      const allocations = Math.floor(grantNow() / perAllocation);
      vi.mocked(fs.readFileSync).mockClear();
      budget.assertHeadroom(); // the count
      for (let i = 0; i < freesFirst; i += 1) budget.removed(); // of mappings made before the count
      for (let i = 1; i < allocations - 2; i += 1) budget.assertHeadroom();
      expect(mapsReads(), `${freesFirst} frees`).toBe(1);
      for (let i = 0; i < 4; i += 1) budget.assertHeadroom();
      expect(mapsReads(), `${freesFirst} frees`).toBe(2);
    }
  });
});
