/**
 * The child of `secure-memory fuzz`: fuzzes one backend and mode with `runFuzz` and reports a
 * JSON line after each run that passed (`{"event":"run","runs":n}`) and one at the end
 * (`{"event":"result",...}`). A crash leaves the parent the last run that passed, so it can
 * name the run that crashed. `node fuzz-child.js '<{"module","options","seed","numRuns","path","replayPath"}>'`
 * @module
 */
import { type FuzzOptions, runFuzz, sendError, sendEvent } from '@secure-memory/testkit';

const config = JSON.parse(process.argv[2] ?? '{}') as Omit<FuzzOptions, 'progress'>;
try {
  const result = await runFuzz({ ...config, progress: (runs) => sendEvent({ event: 'run', runs }) });
  sendEvent({ event: 'result', result });
  process.exit(0);
} catch (error) {
  sendError(error);
  process.exit(2);
}
