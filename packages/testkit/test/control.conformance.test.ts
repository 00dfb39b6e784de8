import { describeConformance } from '@secure-memory/testkit/vitest';

// The control claims nothing: every contract check and bad input must pass, and every guarantee
// must come out as not claimed (holds, absent or skipped).
describeConformance({ name: 'control', module: '@secure-memory/testkit/control' });
