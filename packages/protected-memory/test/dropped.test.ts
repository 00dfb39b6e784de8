// A secret dropped without close() is wiped and released by the garbage collector (issue #13 item 8).
import { assertBuilt } from './helpers.js';
import { describeDropped } from '../../testkit/test/backend-suites.js';

assertBuilt();
describeDropped('@secure-memory/protected-memory', [
  ['page', { secretMemory: 'off' }],
  ['slab', { secretMemory: 'off', packing: 'slab' }],
  ['secret-memory', { secretMemory: 'auto' }],
]);
