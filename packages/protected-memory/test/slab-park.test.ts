// Slab packing: a size class whose last secret closes keeps its slab until the end of the turn, so a
// new secret of that class right after (a new+close loop) reuses it instead of mapping, locking and
// advising a new one (4 system calls per new+close instead of 12); at the next turn, or as soon as
// stats are read, the empty slab is unmapped as before.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createFactory } from '../src/index.js';

const region = (s: object): bigint =>
  ((s as Record<symbol, () => { address: bigint }>)[Symbol.for('secure-memory.region')] as () => { address: bigint })().address;

/** Whether some mapping of this process holds `address` (/proc/self/maps, the kernel's list). */
function mapped(address: bigint): boolean {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((line) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
      return m !== null && address >= BigInt(`0x${m[1]}`) && address < BigInt(`0x${m[2]}`);
    });
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe.runIf(process.platform === 'linux')("packing 'slab': the empty slab of a class", () => {
  it('stays mapped until the turn ends and takes the next secret of its class; then it is unmapped', async () => {
    const factory = createFactory({ secretMemory: 'off', packing: 'slab' });
    const first = factory.createRandom(32);
    const page = region(first) & ~4095n;
    first.close();
    expect(mapped(page)).toBe(true); // parked, not unmapped
    const second = factory.new(new Uint8Array(32).fill(9));
    expect(region(second) & ~4095n).toBe(page); // the same slab, no new mapping
    expect(second.equals(new Uint8Array(32).fill(9))).toBe(true); // (no view handed out: a view would keep its slot retired)
    second.close();
    await turn();
    await turn();
    expect(mapped(page)).toBe(false);
    expect(factory.stats()).toMatchObject({ inUse: 0, mappings: 0, lockedBytes: 0, slabs: 0 });
  });

  it('is unmapped before stats are read, so stats never count it', () => {
    const factory = createFactory({ secretMemory: 'off', packing: 'slab' });
    const s = factory.createRandom(32);
    const page = region(s) & ~4095n;
    s.close();
    expect(factory.stats()).toMatchObject({ inUse: 0, mappings: 0, lockedBytes: 0, slabs: 0 });
    expect(mapped(page)).toBe(false);
  });
});
