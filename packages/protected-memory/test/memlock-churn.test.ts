// close() unmaps without munlock: munmap removes the lock of the pages it unmaps and gives their
// RLIMIT_MEMLOCK charge back. Proven as an unprivileged user under a limit one page above what the
// held secrets take: a charge left behind by one new+close would refuse the next.
// The fixture imports the built package (dist/): build first.
import { unprivileged } from '@secure-memory/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { PAGE, assertBuilt, hasSetpriv, isRoot, output, runFixture } from './helpers.js';

beforeAll(assertBuilt);

const LIMIT = 64 * 1024; // AWS Lambda's RLIMIT_MEMLOCK
const CYCLES = 3000;

interface ChurnReport {
  uid: number;
  mode: string;
  packing: string;
  limit: number;
  held: number;
  heldError: string | null;
  before: { vmLck: number; lockedBytes: number };
  made: number;
  failure: { code: string; requested: number; limit: number } | null;
  after: { vmLck: number; lockedBytes: number };
}

describe.skipIf(!isRoot || !hasSetpriv)('new+close under a 64 KiB RLIMIT_MEMLOCK, as nobody, one page left', () => {
  it.each([
    ['off', 'page', 'anonymous', CYCLES],
    ['require', 'page', 'secret-memory', CYCLES],
    ['off', 'slab', 'anonymous', 300], // each cycle maps, locks and unmaps a slab of its own (the turn ends between)
  ] as const)("secretMemory '%s', packing '%s': every cycle gets the page the previous one gave back", (secretMemory, packing, mode, cycles) => {
    const report = output<ChurnReport>(runFixture('churn.mjs', [secretMemory, packing, String(cycles), String(PAGE)], unprivileged([], { memlock: LIMIT })));
    expect(report).toMatchObject({ uid: 65534, mode, packing, limit: LIMIT, heldError: null, held: LIMIT / PAGE - 1 });
    // The held secrets take all but one page of the limit (the control: the limit is tight).
    expect(report.before).toEqual({ vmLck: LIMIT - PAGE, lockedBytes: LIMIT - PAGE });
    expect(report.failure).toBeNull();
    expect(report.made).toBe(cycles);
    // Nothing stays locked after the cycles: VmLck (the kernel's count) is where it was.
    expect(report.after).toEqual(report.before);
  });
});
