/**
 * The testkit's key-use probe on every backend and mode: a child runs an envelope SDK on this
 * package for 1,000 records (per record a data key sealed with, wrapped under a cached
 * intermediate key, unwrapped, opened with, HMACed with and derived from; the KEK HMACs every
 * record), collects its garbage, and is scanned from outside (/proc/<pid>/mem: every 16-byte window
 * of the KEK, the intermediate key and 20 sampled data keys and derived keys, raw and encoded) and
 * in one core dump. The controls show the probe catches what it must: the same SDK on node:crypto,
 * a helper that copies a key (a KeyObject of the KEK, a Buffer of a data key), and a backend that
 * keeps keys in ordinary memory while claiming otherwise.
 */
import { fileURLToPath } from 'node:url';
import { type KeyUseReport, coreDumpUnavailable, probeKeyUse } from '@secure-memory/testkit';
import { describe, expect, it } from 'vitest';

const noCore = coreDumpUnavailable();
const fixture = (name: string): string => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));
const show = (r: KeyUseReport): string => `${r.status}: ${r.detail}`;

/** Every backend and mode of this repository. */
const TARGETS = [
  ["protected-memory (packing 'page')", '@secure-memory/protected-memory', { secretMemory: 'off' }],
  ["protected-memory (packing 'slab')", '@secure-memory/protected-memory', { packing: 'slab', secretMemory: 'off' }],
  ["protected-memory (secretMemory 'require')", '@secure-memory/protected-memory', { secretMemory: 'require' }],
  ['memguard (locked)', '@secure-memory/memguard', { mode: 'locked' }],
  ['memguard (enclave)', '@secure-memory/memguard', { mode: 'enclave' }],
  ['sodium', '@secure-memory/sodium', {}],
] as const;

describe.each(TARGETS)('keys used in place with %s', (name, module, options) => {
  it('leave no window of any key outside protected memory, in /proc/<pid>/mem and in a core dump', async () => {
    const report = await probeKeyUse({ name, module, options });
    expect(report.status, show(report)).toBe('verified');
    expect(report.records).toBe(1000);
    expect(report.keys).toEqual({ kek: 1, intermediate: 1, dataKey: 20, derived: 20 });
    expect(report.unprotectedCopies).toEqual({});
    // The scan reads protected memory too: the KEK is in its aead's state (and the intermediate
    // key's halves are AES-256-GCM round keys 0 and 1 in its aead's state).
    expect(report.protectedCopies.kek ?? 0, show(report)).toBeGreaterThanOrEqual(1);
    expect(report.protectedCopies.intermediate ?? 0, show(report)).toBeGreaterThanOrEqual(1);
    if (noCore === undefined) {
      expect(report.coreBytes).toBeGreaterThan(0);
      expect(report.coreCopies).toEqual({});
    }
  });
});

describe('the probe catches what copies a key', () => {
  it('the same SDK on node:crypto (KeyObjects, cipher contexts, update() outputs, hkdfSync): violated, in the scan and in the core dump', async () => {
    const report = await probeKeyUse({ module: '@secure-memory/protected-memory', options: { secretMemory: 'off' }, workload: fixture('node-crypto-workload.mjs'), core: noCore === undefined });
    expect(report.status, show(report)).toBe('violated');
    // Cached KeyObjects hold the whole KEK and the cached data keys in the malloc heap.
    expect(report.unprotectedCopies.kek ?? 0).toBeGreaterThanOrEqual(1);
    expect(report.unprotectedCopies.dataKey ?? 0).toBeGreaterThanOrEqual(20);
    expect(report.where.length).toBeGreaterThan(0);
    if (noCore === undefined) expect(report.coreCopies?.kek ?? 0).toBeGreaterThanOrEqual(1);
  });

  it('a helper that copies a key once (a KeyObject of the KEK, a Buffer of one data key), in 1,000 records: violated, in the scan and in the core dump', async () => {
    const report = await probeKeyUse({ module: '@secure-memory/protected-memory', options: { secretMemory: 'off' }, workload: fixture('copying-helper-workload.mjs'), core: noCore === undefined });
    expect(report.status, show(report)).toBe('violated');
    expect(report.unprotectedCopies.kek ?? 0, show(report)).toBeGreaterThanOrEqual(1);
    expect(report.unprotectedCopies.dataKey ?? 0, show(report)).toBeGreaterThanOrEqual(1);
    // Everything else stays in protected memory.
    expect(report.unprotectedCopies.intermediate).toBeUndefined();
    expect(report.unprotectedCopies.derived).toBeUndefined();
    if (noCore === undefined) expect(report.coreCopies?.kek ?? 0, show(report)).toBeGreaterThanOrEqual(1);
  });

  it('a liar backend (the control backend claiming to lock, exclude from dumps and wipe, keeping keys in plain memory): violated', async () => {
    const report = await probeKeyUse({ module: '@secure-memory/testkit/control', options: { claim: ['lockedInRam', 'excludedFromCoreDumps', 'wipesOnClose'], wipe: true }, records: 100, core: false });
    expect(report.backend).toBe('liar');
    expect(report.status, show(report)).toBe('violated');
    expect(report.unprotectedCopies.kek ?? 0).toBeGreaterThanOrEqual(1);
    expect(report.unprotectedCopies.intermediate ?? 0).toBeGreaterThanOrEqual(1);
  });
});
