/**
 * The child of `secure-memory fuzz`: fuzzes one backend and mode with `runFuzz` and reports a
 * JSON line after each run that passed (`{"event":"run","runs":n}`) and one at the end
 * (`{"event":"result",...}`). A crash leaves the parent the last run that passed, so it can
 * name the run that crashed. `node fuzz-child.js '<{"module","options","seed","numRuns","path","replayPath"}>'`
 * @module
 */
import { type FuzzOptions, runFuzz } from '@secure-memory/testkit';
import { send } from './child.js';

const config = JSON.parse(process.argv[2] ?? '{}') as Omit<FuzzOptions, 'progress'>;
try {
  const result = await runFuzz({ ...config, progress: (runs) => send({ event: 'run', runs }) });
  send({ event: 'result', result });
  process.exit(0);
} catch (error) {
  send({ event: 'error', code: (error as { code?: unknown }).code ?? null, message: String((error as Error).message ?? error) });
  process.exit(2);
}
