import { assertBuilt } from './helpers.js';
import { describeIngestion } from '../../testkit/test/backend-suites.js';

assertBuilt();
describeIngestion(
  '@secure-memory/protected-memory',
  [
    ['page', { secretMemory: 'off' }],
    ['slab', { secretMemory: 'off', packing: 'slab' }],
    ['default (secret memory when the kernel has it)', {}],
  ],
  { secretMemory: 'off' },
);
