// The contract suite in process and the guarantee probes from outside, through the testkit. The
// probes' child processes import the built package (dist/) by its name. Every flag's status is
// stated per mode, so a flag that stops being observed (or starts to be) fails its test.
import { describeConformance } from '@secure-memory/testkit/vitest';

const PAGE = {
  wipesOnClose: 'verified',
  lockedInRam: 'verified',
  excludedFromCoreDumps: 'verified',
  noAccessWhenIdle: 'verified',
  viewsRevoked: 'absent',
  guardPages: 'absent',
  canary: 'absent',
  encryptedAtRest: 'absent',
  notInheritedByFork: 'verified',
  hiddenFromKernel: 'absent',
  constantTimeEquals: 'verified',
} as const;

// memfd_secret: the kernel hides the pages from /proc/<pid>/mem, so the idle scan cannot tell
// whether the bytes are encrypted: encryptedAtRest is skipped, hiddenFromKernel verified.
const SECRET_MEMORY = { ...PAGE, encryptedAtRest: 'skipped', hiddenFromKernel: 'verified' } as const;

// Slab packing claims canary (checked on close, probed by a write just before the data) and does not
// claim noAccessWhenIdle (a page is readable while any of its secrets is accessed), which the probes
// still observe for one secret alone: holds.
const SLAB = { noAccessWhenIdle: 'holds', canary: 'verified' } as const;

describeConformance({
  name: "protected-memory (secretMemory 'off')",
  module: '@secure-memory/protected-memory',
  options: { secretMemory: 'off' },
  expected: PAGE,
});

describeConformance({
  name: "protected-memory (secretMemory 'require')",
  module: '@secure-memory/protected-memory',
  options: { secretMemory: 'require' },
  expected: SECRET_MEMORY,
});

describeConformance({
  name: "protected-memory (packing 'slab', secretMemory 'off')",
  module: '@secure-memory/protected-memory',
  options: { packing: 'slab', secretMemory: 'off' },
  expected: { ...PAGE, ...SLAB },
});

describeConformance({
  name: "protected-memory (packing 'slab', secretMemory 'require')",
  module: '@secure-memory/protected-memory',
  options: { packing: 'slab', secretMemory: 'require' },
  expected: { ...SECRET_MEMORY, ...SLAB },
});
