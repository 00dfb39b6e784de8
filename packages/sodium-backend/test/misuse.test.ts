// Ordinary calls that used to kill the process (issue #13 item 7): each runs in a child that must live.
import { describe, expect, it } from 'vitest';
import { probeFixture } from '../../testkit/test/outside.js';
import { runFixture } from './helpers.ts';

const module = '@secure-memory/sodium';

describe('no SIGSEGV for ordinary calls', () => {
  it('new() of a subarray of a read-only view from withBytes copies it (and cannot wipe it)', () => {
    const child = runFixture(probeFixture('misuse.mjs'), [module, '{}', 'split']);
    expect(child.signal, child.stderr).toBeNull();
    expect(child.result).toEqual({ a: true, b: true, masterIntact: true });
  });

  it('reader().read() into a read-only view of another secret is ERR_INVALID_ARG_VALUE', () => {
    const child = runFixture(probeFixture('misuse.mjs'), [module, '{}', 'target']);
    expect(child.signal, child.stderr).toBeNull();
    expect(child.result).toEqual({ code: 'ERR_INVALID_ARG_VALUE', sub: 'ERR_INVALID_ARG_VALUE' });
  });

  it('withBytes((k) => helperThatAwaits(k)): ERR_ASYNC_ACTION, and the helper reads k a tick later instead of faulting', () => {
    const child = runFixture(probeFixture('misuse.mjs'), [module, '{}', 'async']);
    expect(child.signal, child.stderr).toBeNull();
    expect(child.result).toEqual({ code: 'ERR_ASYNC_ACTION', touched: 1 + 32, after: 32, inUse: 0 });
  });
});
