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
