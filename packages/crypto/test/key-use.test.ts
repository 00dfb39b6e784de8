/**
 * The key-use proof: after 1,000 envelope records (a data key each: sealed with, wrapped, unwrapped,
 * opened with, HMACed with, derived from; the KEK and the intermediate key used for every one) and
 * garbage collection, an outside scan finds no 16-byte window of the KEK, the intermediate key, the
 * sampled data keys or the sampled derived keys outside locked, undumped memory, nor any in a core
 * dump, on every backend. The control, the same SDK on node:crypto, shows that the scans find such
 * copies when they exist.
 */
import { coreDumpUnavailable } from '@secure-memory/testkit';
import { describe, expect, it } from 'vitest';
import { BACKEND_MODULES } from './backends.ts';
import { probeKeyUse } from './key-use.ts';

const RECORDS = 1000;
const TIMEOUT = 300_000;
const noCore = coreDumpUnavailable();

describe.each(BACKEND_MODULES)('keys used in place with %s', (module) => {
  it(
    'leave no window of any key outside protected memory, in /proc/<pid>/mem and in a core dump',
    async () => {
      const report = await probeKeyUse(module, 'ours', RECORDS, noCore === undefined);
      expect(report.keys).toEqual({ kek: 1, intermediate: 1, dataKeys: 20, derived: 20 });
      expect(report.unprotectedHits, JSON.stringify(report.where, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString(16) : v))).toEqual({});
      // The scan reads protected memory too: the KEK is in its aead state (and, for the intermediate key, AES-256-GCM round keys 0 and 1 are its halves).
      expect(report.protectedHits.kek ?? 0).toBeGreaterThanOrEqual(2);
      if (noCore === undefined) {
        expect(report.coreBytes).toBeGreaterThan(0);
        expect(report.coreHits).toEqual({});
      }
    },
    TIMEOUT,
  );

  it(
    'control: the same SDK on node:crypto leaves copies that the scans find',
    async () => {
      const core = noCore === undefined && module === BACKEND_MODULES[0];
      const report = await probeKeyUse(module, 'node', RECORDS, core);
      // Cached KeyObjects hold the whole KEK and the cached data keys in the malloc heap.
      expect(report.unprotectedHits.kek ?? 0).toBeGreaterThanOrEqual(17);
      expect(report.unprotectedHits.dataKey ?? 0).toBeGreaterThanOrEqual(17);
      if (core) expect(report.coreHits?.kek ?? 0).toBeGreaterThanOrEqual(17);
    },
    TIMEOUT,
  );
});

describe('a backend that keeps keys in ordinary memory', () => {
  it(
    'is caught: the control backend (plain heap, claims nothing) leaves every key outside protected memory',
    async () => {
      const report = await probeKeyUse('@secure-memory/testkit/control', 'ours', 100, false);
      expect(report.unprotectedHits.kek ?? 0).toBeGreaterThanOrEqual(17);
      expect(report.unprotectedHits.intermediate ?? 0).toBeGreaterThanOrEqual(17);
    },
    TIMEOUT,
  );
});

