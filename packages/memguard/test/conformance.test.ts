// The contract suite in process and the guarantee probes from outside, through the testkit, for
// both modes. The probes' child processes import the built package (dist/) by its name. Every
// flag's status is stated per mode, so a flag that stops being observed fails its test. A view kept
// past its access faults rather than being revoked (it must never act as an empty key): memguard
// does not claim viewsRevoked, and the probe observes no revocation.
import { describeConformance } from '@secure-memory/testkit/vitest';
import { GUARDED_LOCKED } from '../../testkit/test/expected.js';

// The statuses of guarded, locked memory (sodium's too); memguard's regions are also wiped in a
// forked child (MADV_WIPEONFORK).
const LOCKED = { ...GUARDED_LOCKED, notInheritedByFork: 'verified' } as const;

describeConformance({
  name: 'memguard (enclave)',
  module: '@secure-memory/memguard',
  options: { mode: 'enclave' },
  expected: { ...LOCKED, encryptedAtRest: 'verified' },
});
describeConformance({ name: 'memguard (locked)', module: '@secure-memory/memguard', options: { mode: 'locked' }, expected: LOCKED });
