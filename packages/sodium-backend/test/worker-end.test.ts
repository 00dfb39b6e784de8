// Secrets made in a worker thread are wiped and released when the worker ends (issue #13 item 5):
// by core's exit event after process.exit(), and after terminate() by sodium-native's finalizers,
// which Node runs at the worker's teardown (they sodium_free: zero, munlock, munmap).
import { describeWorkerEnd } from '../../testkit/test/backend-suites.js';

// 2 secrets a worker: each worker's own sentinel allocation takes a locked page too.
describeWorkerEnd('@secure-memory/sodium', [['lock: require', {}]], 2);
