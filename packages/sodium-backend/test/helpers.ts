import { spawnSync } from 'node:child_process';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unprivileged } from '@secure-memory/testkit';

export { mappingsAt } from '../../testkit/test/self.js';

/** The outcome of a fixture run in a child process. */
export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last JSON line the child printed, if any. */
  result: Record<string, unknown> | undefined;
}

/**
 * Runs test/fixtures/<name>.mjs (which imports the built package), or the program at `name` when it
 * is an absolute path (the testkit's shared backend probes), in a child, optionally as `nobody`.
 */
export function runFixture(name: string, args: string[] = [], { asNobody = false } = {}): ChildResult {
  const fixture = isAbsolute(name) ? name : fileURLToPath(new URL(`./fixtures/${name}.mjs`, import.meta.url));
  const [command, ...argv] = asNobody ? unprivileged([process.execPath, fixture, ...args]) : [process.execPath, fixture, ...args];
  const child = spawnSync(command as string, argv, { encoding: 'utf8', timeout: 600_000, maxBuffer: 16 * 1024 * 1024 });
  const lines = child.stdout.split('\n').filter((l) => l.startsWith('{'));
  const last = lines.at(-1);
  return {
    status: child.status,
    signal: child.signal,
    stdout: child.stdout,
    stderr: child.stderr,
    result: last === undefined ? undefined : (JSON.parse(last) as Record<string, unknown>),
  };
}
