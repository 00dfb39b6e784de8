/**
 * The key-use probe's verdicts (from synthetic observations), its argument checks, and its child
 * side with workloads that need nothing but node:crypto. The probe on every backend, with the
 * envelope SDK on @secure-memory/crypto, runs in that package's tests (test/key-use.test.ts).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type KeyUseObservations, judgeKeyUse, probeKeyUse, runConformance } from '@secure-memory/testkit';
import { describeConformance } from '@secure-memory/testkit/vitest';
import type { HitRecord } from '../src/observe.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/key-use/${name}`, import.meta.url));
const CONTROL = '@secure-memory/testkit/control';

const mapping = (path: string, vmFlags: string[]) => ({ range: '7f0000000000-7f0000001000', perms: 'rw-p', path, vmFlags });
const hit = (label: string, where: ReturnType<typeof mapping>): HitRecord => ({ secret: 0, label, encoding: 'raw', bytes: 32, address: '0x7f0000000010', mapping: where });
const LOCKED = mapping('', ['rd', 'wr', 'lo', 'dd', 'wf']);
const HEAP = mapping('[heap]', ['rd', 'wr']);

function seen(overrides: Partial<KeyUseObservations> = {}): KeyUseObservations {
  return {
    backend: 'b',
    keys: { kek: 1, intermediate: 1, dataKey: 20, derived: 20 },
    scannedBytes: 200 << 20,
    protectedHits: [hit('kek', LOCKED)],
    unprotectedHits: [],
    unreadable: [],
    core: { available: true, coreBytes: 600 << 20, durationMs: 2000, hits: [] },
    ...overrides,
  };
}

describe('judgeKeyUse', () => {
  it('verified: keys seen in locked, undumped memory and nowhere else, 0 in the core', () => {
    const v = judgeKeyUse(seen());
    expect(v.status, v.detail).toBe('verified');
    expect(v.detail).toMatch(/^0 copies of 42 keys/);
  });

  it.each([
    ['a copy in the heap', seen({ unprotectedHits: [hit('dataKey', HEAP)] }), /^outside protected memory after GC, 1 copies: dataKey/],
    ['a copy in locked memory that core dumps include', seen({ unprotectedHits: [hit('kek', mapping('', ['rd', 'wr', 'lo']))] }), /^outside protected memory/],
    ['a copy in the core dump only', seen({ core: { available: true, coreBytes: 1, durationMs: 1, hits: [hit('intermediate', null as never)] } }), /in the core dump/],
    ['a mapping that could not be read', seen({ unreadable: [{ mapping: HEAP, code: 'EIO' }] }), /^cannot be observed: 1 mapping/],
    ['no key seen anywhere', seen({ protectedHits: [] }), /^cannot be observed: no copy of the 42 keys/],
    ['no key reported', seen({ keys: {}, protectedHits: [] }), /^cannot be observed: the workload reported no key/],
    ['a core dump asked for and not taken', seen({ core: { available: false, asked: true, tooLarge: false, reason: 'gcore and gdb are not installed' } }), /^cannot be observed: no core dump/],
  ])('violated: %s', (_name, observations, detail) => {
    const v = judgeKeyUse(observations);
    expect(v.status, v.detail).toBe('violated');
    expect(v.detail).toMatch(detail);
  });

  it('a core too large to take is judged by the mappings alone; a core turned off is said so', () => {
    expect(judgeKeyUse(seen({ core: { available: false, asked: true, tooLarge: true, reason: 'no core taken: 10 GiB' } })).status).toBe('verified');
    const off = judgeKeyUse(seen({ core: { available: false, asked: false, tooLarge: false, reason: 'off' } }));
    expect(off.status).toBe('verified');
    expect(off.detail).toMatch(/no core dump taken \(core: false\)$/);
  });

  it('skipped when the workload cannot run here', () => {
    expect(judgeKeyUse(seen({ unavailable: '@secure-memory/crypto cannot be loaded' }))).toEqual({ status: 'skipped', detail: 'not run: @secure-memory/crypto cannot be loaded' });
  });
});

describe('probeKeyUse', () => {
  it.each([
    [{}, 'ERR_INVALID_ARG_TYPE'],
    [{ module: CONTROL, records: '5' }, 'ERR_INVALID_ARG_TYPE'],
    [{ module: CONTROL, records: 0 }, 'ERR_OUT_OF_RANGE'],
    [{ module: CONTROL, records: 1.5 }, 'ERR_OUT_OF_RANGE'],
    [{ module: CONTROL, workload: '' }, 'ERR_INVALID_ARG_TYPE'],
    [{ module: CONTROL, core: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
  ])('refuses %j with %s', async (target, code) => {
    await expect(probeKeyUse(target as never)).rejects.toMatchObject({ code });
  });

  it('catches a key kept by node:crypto (a cached KeyObject), in the scan and in the core dump', async () => {
    const report = await probeKeyUse({ module: CONTROL, workload: fixture('hmac-workload.mjs'), records: 200 });
    expect(report.status, report.detail).toBe('violated');
    expect(report.keys).toEqual({ kek: 1 });
    expect(report.unprotectedCopies.kek ?? 0).toBeGreaterThanOrEqual(1);
    expect(report.coreCopies?.kek ?? 0).toBeGreaterThanOrEqual(1);
    expect(report.where[0]?.mapping?.vmFlags).not.toContain('dd');
  });

  it('skipped, running nothing, when the workload says its dependency is missing', async () => {
    const report = await probeKeyUse({ module: CONTROL, workload: fixture('missing-workload.mjs') });
    expect(report).toMatchObject({ status: 'skipped', backend: 'control', keys: {} });
    expect(report.detail).toMatch(/^not run: @secure-memory\/no-such-package cannot be loaded \(ERR_MODULE_NOT_FOUND\)$/);
  });

  it('a workload that fails is a violation with the failure, never a verdict on nothing', async () => {
    const report = await probeKeyUse({ module: CONTROL, workload: fixture('throwing-workload.mjs'), core: false });
    expect(report.status).toBe('violated');
    expect(report.failure?.reason).toMatch(/ERR_WORKLOAD_BROKE: the workload broke/);
  });
});

describe('in the conformance run', () => {
  it('runConformance({ keyUse }) adds the verdict to the report, and a violation makes it fail', async () => {
    const report = await runConformance({ module: CONTROL, reliability: false, keyUse: { workload: fixture('hmac-workload.mjs'), records: 50, core: false } });
    expect(report.keyUse?.status, report.keyUse?.detail).toBe('violated');
    expect(report.keyUse?.unprotectedCopies.kek ?? 0).toBeGreaterThanOrEqual(1);
    expect(report.ok).toBe(false);
    const without = await runConformance({ module: CONTROL, reliability: false, keyUse: { workload: fixture('missing-workload.mjs') } });
    expect(without.keyUse?.status).toBe('skipped');
  });

  it.each([
    [{ keyUse: 'yes' }, 'ERR_INVALID_ARG_TYPE'],
    [{ keyUse: { records: -1 } }, 'ERR_OUT_OF_RANGE'],
    [{ keyUse: { core: 1 } }, 'ERR_INVALID_ARG_TYPE'],
  ])('refuses %j, in runConformance and describeConformance', async (extra, code) => {
    await expect(runConformance({ module: CONTROL, ...extra } as never)).rejects.toMatchObject({ code });
    expect(() => describeConformance({ name: 'bad', module: CONTROL, ...extra } as never)).toThrow(expect.objectContaining({ code }));
  });
});
