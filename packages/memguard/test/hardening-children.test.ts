// Issue #13 (hardening), in child processes: faults, limits, other Node versions, scans from outside.
// The fixtures import the built package (dist/): build first.
import { constants } from 'node:os';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, lastJson, runFixture } from './helpers.js';

beforeAll(assertBuilt);

describe('no free file descriptor at first use', () => {
  it.each(['cold', 'warm'])('%s: ERR_BACKEND_UNAVAILABLE with errno EMFILE and the system error as cause; works once a descriptor is free', (how) => {
    const report = lastJson<{ first: Record<string, unknown>; afterFree: unknown }>(runFixture('emfile.mjs', [how], { wrap: ['prlimit', '--nofile=256', '--'] }));
    expect(report.first).toMatchObject({ code: 'ERR_BACKEND_UNAVAILABLE', errno: constants.errno.EMFILE, causeCode: 'EMFILE' });
    expect(report.first.message).not.toContain('not built');
    expect(report.afterFree).toBe(8);
  });
});
