import { describeIngestion } from '../../testkit/test/backend-suites.js';

describeIngestion('@secure-memory/sodium', [['lock: require', {}]], {});
