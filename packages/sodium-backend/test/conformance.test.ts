// The contract suite in process and the guarantee probes from outside, through the testkit. Every
// flag's status is stated per mode, so a flag that stops being observed fails its test.
import { describeConformance } from '@secure-memory/testkit/vitest';
import { GUARDED_LOCKED } from '../../testkit/test/expected.js';

const REQUIRE = GUARDED_LOCKED;

describeConformance({ name: 'sodium', module: '@secure-memory/sodium', options: {}, expected: REQUIRE });
// best-effort does not claim lockedInRam; the probe's few small secrets fit any memlock limit, so
// every lock succeeds and the probe sees it: holds.
describeConformance({
  name: 'sodium (lock: best-effort)',
  module: '@secure-memory/sodium',
  options: { lock: 'best-effort' },
  expected: { ...REQUIRE, lockedInRam: 'holds' },
});
