import { describeConformance } from '@secure-memory/testkit/vitest';

// The control claims nothing and keeps its bytes in the plain heap: every contract check and bad
// input must pass, and every flag has the exact status its probe must observe. The scans must find
// its bytes (absent); guard pages and canary cannot be aimed without a region (skipped); its
// equals is core's constant-time one (holds).
describeConformance({
  name: 'control',
  module: '@secure-memory/testkit/control',
  expected: {
    wipesOnClose: 'absent',
    lockedInRam: 'absent',
    excludedFromCoreDumps: 'absent',
    noAccessWhenIdle: 'absent',
    viewsRevoked: 'absent',
    guardPages: 'skipped',
    canary: 'skipped',
    encryptedAtRest: 'absent',
    notInheritedByFork: 'absent',
    hiddenFromKernel: 'absent',
    constantTimeEquals: 'holds',
  },
});
