// The contract suite in process and the guarantee probes from outside, through the testkit, for
// both modes. The probes' child processes import the built package (dist/) by its name.
import { describeConformance } from '@secure-memory/testkit/vitest';

describeConformance({ name: 'memguard (enclave)', module: '@secure-memory/memguard', options: { mode: 'enclave' } });
describeConformance({ name: 'memguard (locked)', module: '@secure-memory/memguard', options: { mode: 'locked' } });
