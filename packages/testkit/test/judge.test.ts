import { describe, expect, it } from 'vitest';
import type { GuaranteeFlag } from '@secure-memory/core';
import { defineGuarantees } from '@secure-memory/core/backend';
import { type Observations, judge } from '@secure-memory/testkit';

const outcome = (events: Record<string, unknown>[], code: number | null = 0, signal: NodeJS.Signals | null = null) => ({
  events: events as ({ event: string } & Record<string, unknown>)[],
  code,
  signal,
  stderr: '',
});
const held = [{ label: 'createRandom(32)', size: 32 }];
const mapping = { range: '1000-2000', perms: 'rw-p', path: '', vmFlags: ['rd', 'wr'] };

/** Observations in which the probes saw nothing at all: no copy anywhere, no region, every view revoked. */
function nothingSeen(claims: GuaranteeFlag[]): Observations {
  const empty = { hits: [], scannedBytes: 1 << 20, unreadable: [] };
  return {
    name: 'invisible',
    guarantees: defineGuarantees(Object.fromEntries(claims.map((c) => [c, true]))),
    held,
    sizes: [32],
    workerHeld: [],
    workerError: 'not in worker threads',
    scans: { idle: empty, access: empty, closed: empty },
    core: { available: true, hits: [], coreBytes: 1 << 20, durationMs: 1 },
    regions: { idle: [null], access: [null], closed: [null] },
    equals: { correct: true, sharedImplementation: true },
    keepView: outcome([{ event: 'kept', byteLength: 0 }]),
    keepAfterClose: outcome([{ event: 'kept', byteLength: 0 }, { event: 'result', readOther: false, tries: 16 }]),
    transfer: outcome([{ event: 'unsupported' }]),
    guardAfter: outcome([{ event: 'no-region' }]),
    guardBefore: outcome([{ event: 'no-region' }]),
    canary: outcome([{ event: 'no-region' }]),
  };
}

describe('no verdict on nothing', () => {
  it('every memory claim is violated when the probes saw no copy and no region', () => {
    const flags: GuaranteeFlag[] = ['wipesOnClose', 'lockedInRam', 'excludedFromCoreDumps', 'noAccessWhenIdle', 'encryptedAtRest', 'notInheritedByFork', 'hiddenFromKernel'];
    const verdicts = judge(nothingSeen(flags));
    for (const flag of flags) {
      expect(verdicts[flag].status, `${flag}: ${verdicts[flag].detail}`).toBe('violated');
      expect(verdicts[flag].detail).toMatch(/^cannot be observed: /);
    }
    expect(verdicts.noAccessWhenIdle.detail).toMatch(/no idle mapping holding the plaintext was found/);
    expect(verdicts.encryptedAtRest.detail).toMatch(/only 0 of 1 secrets were found during access/);
  });

  it('encryptedAtRest needs every mapping with data read while idle: memfd_secret memory cannot be ruled out', () => {
    const o = nothingSeen(['encryptedAtRest']);
    o.scans.access = { hits: [{ secret: 0, label: 'createRandom(32)', encoding: 'raw', bytes: 32, address: '0x1000', mapping }], scannedBytes: 1, unreadable: [] };
    o.scans.idle = { hits: [], scannedBytes: 1, unreadable: [{ mapping: { ...mapping, range: '9000-a000', path: '/secretmem (deleted)', perms: 'rw-s' }, code: 'EIO' }] };
    expect(judge(o).encryptedAtRest).toMatchObject({ status: 'violated' });
    expect(judge(o).encryptedAtRest.detail).toMatch(/could not be read .* does not say where its secrets are/);
    // With the region known and the plaintext found inside it during access, other unreadable memory cannot hide it...
    o.regions.idle = [{ address: '0x1000', size: 32, mapping: { ...mapping, perms: '---p' }, readError: null }];
    o.regions.access = [{ address: '0x1000', size: 32, mapping, readError: null }];
    expect(judge(o).encryptedAtRest).toMatchObject({ status: 'verified' });
    // ...but a location the plaintext was not found in proves nothing.
    o.regions.access = [{ address: '0x5000', size: 32, mapping, readError: null }];
    expect(judge(o).encryptedAtRest).toMatchObject({ status: 'violated', detail: expect.stringMatching(/not found inside the regions/) });
    o.scans.idle = { hits: [], scannedBytes: 1, unreadable: [] };
    expect(judge(o).encryptedAtRest).toMatchObject({ status: 'verified' });
  });

  it('wipesOnClose needs the plaintext seen before close, and no unreadable mapping after it', () => {
    const o = nothingSeen(['wipesOnClose']);
    expect(judge(o).wipesOnClose.status).toBe('violated');
    o.scans.idle = { hits: [{ secret: 0, label: 'createRandom(32)', encoding: 'raw', bytes: 32, address: '0x1000', mapping }], scannedBytes: 1, unreadable: [] };
    expect(judge(o).wipesOnClose.status).toBe('verified');
    o.scans.closed = { hits: [], scannedBytes: 1, unreadable: [{ mapping, code: 'EIO' }] };
    expect(judge(o).wipesOnClose.status).toBe('violated');
  });

  it('a kept view that read another secret after close violates viewsRevoked and noAccessWhenIdle', () => {
    const o = nothingSeen(['viewsRevoked', 'noAccessWhenIdle']);
    o.regions.idle = [{ address: '0x1000', size: 32, mapping: { ...mapping, perms: '---p' }, readError: null }];
    expect(judge(o).viewsRevoked.status).toBe('verified');
    expect(judge(o).noAccessWhenIdle.status).toBe('verified');
    o.keepAfterClose = outcome([{ event: 'kept', byteLength: 32 }, { event: 'result', readOther: true, tries: 1 }]);
    expect(judge(o).viewsRevoked).toMatchObject({ status: 'violated', detail: expect.stringMatching(/read another secret/) });
    expect(judge(o).noAccessWhenIdle).toMatchObject({ status: 'violated', detail: expect.stringMatching(/read another secret/) });
  });
});
