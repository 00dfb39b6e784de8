// Secrets made in a worker thread are wiped and released when the worker ends (issue #13 item 5):
// by its `exit` event (process.exit(), or a normal end), or, after terminate(), by the thread that
// spawned it at the Worker's `exit` event (see src/threads.ts). The workers' 16 secrets fill the
// 64 KiB limit in page mode: the main thread's createRandom(32) after them needs them released.
import { assertBuilt } from './helpers.js';
import { describeWorkerEnd } from '../../testkit/test/backend-suites.js';

assertBuilt();
describeWorkerEnd(
  '@secure-memory/protected-memory',
  [
    ['page', { secretMemory: 'off' }],
    ['slab', { secretMemory: 'off', packing: 'slab' }],
  ],
  4,
);
