import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unprivileged } from '@secure-memory/testkit';

/** The perms and VmFlags of the mapping of this process that holds `address`. */
export interface MappingFacts {
  start: bigint;
  end: bigint;
  perms: string;
  flags: string[];
}

/** Reads /proc/self/smaps once and returns the mapping holding each address. */
export function mappingsAt(...addresses: bigint[]): (MappingFacts | undefined)[] {
  const found: (MappingFacts | undefined)[] = addresses.map(() => undefined);
  let current: number[] = [];
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) /.exec(line);
    if (header !== null) {
      const start = BigInt(`0x${header[1]}`);
      const end = BigInt(`0x${header[2]}`);
      current = addresses.flatMap((a, i) => (a >= start && a < end ? [i] : []));
      for (const i of current) found[i] = { start, end, perms: header[3] as string, flags: [] };
    } else if (line.startsWith('VmFlags:')) {
      const flags = line.slice(8).trim().split(/\s+/);
      for (const i of current) (found[i] as MappingFacts).flags = flags;
    }
  }
  return found;
}

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
