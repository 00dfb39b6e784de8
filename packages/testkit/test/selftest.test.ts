import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { GUARANTEE_FLAGS, type GuaranteeFlag, loadBackend } from '@secure-memory/core';
import { type ConformanceReport, runConformance, runContract } from '@secure-memory/testkit';

const CONTROL = '@secure-memory/testkit/control';
const OBSERVABLE_LIES: GuaranteeFlag[] = GUARANTEE_FLAGS.filter((f) => f !== 'constantTimeEquals');

describe('the control backend: both scanners find its plaintext', () => {
  let report: ConformanceReport;
  beforeAll(async () => {
    report = await runConformance({ module: CONTROL });
  }, 900_000);

  it('names what ran: the module, the options and Node.js', () => {
    expect(report.target).toBe('@secure-memory/testkit/control {}');
    expect(report.node).toBe(process.version);
    expect(report.scan.description).toMatch(/^every 16-byte window of each plaintext, raw and as hex/);
  });

  it('runs the fuzz, the worker threads and the async interleaving too, without vitest', () => {
    expect(report.reliability.fuzz).toMatchObject({ ok: true });
    expect(report.reliability.fuzz.detail).toMatch(/^seed 424242, 300 runs/);
    expect(report.reliability.workers).toMatchObject({ ok: true });
    expect(report.reliability.asyncInterleaving).toMatchObject({ ok: true });
  });

  it('runs every real-use probe; a view kept past close() never reads another secret', () => {
    expect(report.probes.map((p) => p.name)).toHaveLength(4);
    expect(report.probes.find((p) => p.required)).toMatchObject({ passed: true });
    // The control never wipes, but whether its freed memory still holds the bytes after GC depends on
    // what the allocator reused: only that the probes ran is certain here (the liars show they catch).
    expect(report.probes.slice(0, 2).map((p) => typeof p.passed)).toEqual(['boolean', 'boolean']);
    expect(report.probes[0]?.bearsOn).toContain('wipesOnClose');
    expect(report.probes[1]?.bearsOn).toEqual(['wipesOnClose']);
  });

  it('conforms, since it claims nothing', () => {
    expect(report.ok).toBe(true);
    expect(report.contract.failed).toBe(0);
    expect(report.badInputs.failed).toBe(0);
    expect(report.badInputs.passed).toBeGreaterThanOrEqual(30);
  });

  it('the memory scanner finds all six secrets idle and during access, and remnants after close and GC', () => {
    expect(report.evidence?.memoryHits.idle).toBeGreaterThanOrEqual(6);
    expect(report.evidence?.memoryHits.access).toBeGreaterThanOrEqual(6);
    // Nothing is wiped; what the allocator reused after GC is gone, the rest is found.
    expect(report.evidence?.memoryHits.closed).toBeGreaterThanOrEqual(1);
  });

  it('the core-dump scanner finds them during access', () => {
    expect(report.evidence?.coreDumpHits.access).toBeGreaterThanOrEqual(6);
    expect(report.evidence?.core).toMatch(/^gcore during access: \d+ MiB/);
  });

  it.each(['wipesOnClose', 'lockedInRam', 'excludedFromCoreDumps', 'noAccessWhenIdle', 'viewsRevoked', 'encryptedAtRest', 'notInheritedByFork', 'hiddenFromKernel'] as const)(
    '%s is observed absent',
    (flag) => {
      expect(report.guarantees[flag]).toMatchObject({ claimed: false, status: 'absent' });
    },
  );

  it('the report is JSON-serialisable', () => {
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });
});

describe('a liar that claims every guarantee over plain memory is caught', () => {
  let report: ConformanceReport;
  beforeAll(async () => {
    report = await runConformance({ module: CONTROL, options: { claim: [...GUARANTEE_FLAGS], region: true }, reliability: false });
  }, 900_000);

  it('is not ok', () => {
    expect(report.ok).toBe(false);
    expect(report.backend).toBe('liar');
  });

  it.each(OBSERVABLE_LIES)('the lie %s is violated by observation', (flag) => {
    const verdict = report.guarantees[flag];
    expect(verdict.status, verdict.detail).toBe('violated');
    expect(verdict.detail, 'a lie must be caught by what was seen, not for lack of a probe').not.toMatch(/cannot be observed/);
  });
});

describe('checks can pass as well as fail', () => {
  it('a control that wipes on close but not when a worker thread ends: wipesOnClose violated by the worker probe', async () => {
    const report = await runConformance({ module: CONTROL, options: { wipe: true, claim: ['wipesOnClose'] }, reliability: false });
    const verdict = report.guarantees.wipesOnClose;
    expect(verdict.status, verdict.detail).toBe('violated');
    expect(verdict.detail).toMatch(/worker: (createRandom|new)/);
    expect(report.probes[0]).toMatchObject({ passed: true });
    expect(report.probes[1]).toMatchObject({ passed: false });
    expect(report.ok).toBe(false);
  }, 900_000);

  it('a claim without a region probe is violated, not skipped', async () => {
    const report = await runConformance({ module: CONTROL, options: { claim: ['guardPages'] }, reliability: false });
    expect(report.guarantees.guardPages.status).toBe('violated');
    expect(report.guarantees.guardPages.detail).toMatch(/cannot be observed/);
    expect(report.guarantees.canary.status).toBe('skipped');
  }, 900_000);
});

describe('the contract suite catches a backend that breaks the contract', () => {
  it('reports each break', async () => {
    const factory = await loadBackend(fileURLToPath(new URL('./fixtures/broken-backend.mjs', import.meta.url)));
    const { checks, badInputs } = await runContract(factory);
    const failed = new Set(checks.filter((c) => !c.ok).map((c) => c.name));
    for (const name of [
      'new copies the source and zero-fills it',
      'a thenable or async action in withBytes gives ERR_ASYNC_ACTION and the secret stays usable',
      'close inside an action refuses new access at once and frees when the action ends',
      'every use after close throws ERR_SECRET_CLOSED; close is idempotent',
      'equals compares bytes and secrets correctly',
      'util.inspect, String, template strings and JSON show a redacted form',
      'stats count allocations, live secrets and locked bytes',
    ]) {
      expect(failed, name).toContain(name);
    }
    expect(badInputs.filter((c) => !c.ok).length).toBeGreaterThan(20);
  });
});
