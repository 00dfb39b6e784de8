import { describeConformance } from '@secure-memory/testkit/vitest';

describeConformance({ name: 'sodium', module: '@secure-memory/sodium', options: {} });
describeConformance({ name: 'sodium (lock: best-effort)', module: '@secure-memory/sodium', options: { lock: 'best-effort' } });
