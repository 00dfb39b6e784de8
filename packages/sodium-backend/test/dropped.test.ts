// A secret dropped without close() is wiped and released by the garbage collector (issue #13 item 8).
import { describeDropped } from '../../testkit/test/backend-suites.js';

describeDropped('@secure-memory/sodium', [['lock: require', {}]]);
