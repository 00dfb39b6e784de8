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
  });

  it('conforms, since it claims nothing', () => {
    expect(report.ok).toBe(true);
    expect(report.contract.failed).toBe(0);
    expect(report.badInputs.failed).toBe(0);
    expect(report.badInputs.passed).toBeGreaterThanOrEqual(30);
  });

  it('the memory scanner finds all three secrets idle, during access and after close', () => {
    expect(report.evidence.memoryHits.idle).toBeGreaterThanOrEqual(3);
    expect(report.evidence.memoryHits.access).toBeGreaterThanOrEqual(3);
    expect(report.evidence.memoryHits.closed).toBeGreaterThanOrEqual(3);
  });

  it('the core-dump scanner finds them idle and during access', () => {
    expect(report.evidence.coreDumpHits.idle).toBeGreaterThanOrEqual(3);
    expect(report.evidence.coreDumpHits.access).toBeGreaterThanOrEqual(3);
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
    report = await runConformance({ module: CONTROL, options: { claim: [...GUARANTEE_FLAGS], region: true } });
  });

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
  it('a control that wipes on close and claims only that is verified', async () => {
    const report = await runConformance({ module: CONTROL, options: { wipe: true, claim: ['wipesOnClose'] } });
    expect(report.guarantees.wipesOnClose.status).toBe('verified');
    expect(report.evidence.memoryHits.closed).toBe(0);
    expect(report.ok).toBe(true);
  });

  it('a claim without a region probe is violated, not skipped', async () => {
    const report = await runConformance({ module: CONTROL, options: { claim: ['guardPages'] } });
    expect(report.guarantees.guardPages.status).toBe('violated');
    expect(report.guarantees.guardPages.detail).toMatch(/cannot be observed/);
    expect(report.guarantees.canary.status).toBe('skipped');
  });
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
