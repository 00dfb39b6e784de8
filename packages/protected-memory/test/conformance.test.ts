// The contract suite in process and the guarantee probes from outside, through the testkit. The
// probes' child processes import the built package (dist/) by its name.
import { describeConformance } from '@secure-memory/testkit/vitest';

describeConformance({
  name: "protected-memory (secretMemory 'off')",
  module: '@secure-memory/protected-memory',
  options: { secretMemory: 'off' },
});

describeConformance({
  name: "protected-memory (secretMemory 'require')",
  module: '@secure-memory/protected-memory',
  options: { secretMemory: 'require' },
});

// Slab packing: claims canary (checked on close, probed by a write just before the data) and does
// not claim noAccessWhenIdle, which the probes still report as observed for one secret alone.
describeConformance({
  name: "protected-memory (packing 'slab', secretMemory 'off')",
  module: '@secure-memory/protected-memory',
  options: { packing: 'slab', secretMemory: 'off' },
});

describeConformance({
  name: "protected-memory (packing 'slab', secretMemory 'require')",
  module: '@secure-memory/protected-memory',
  options: { packing: 'slab', secretMemory: 'require' },
});
