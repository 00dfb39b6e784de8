import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { REGION_PROBE, type RegionLocation } from '@secure-memory/core/backend';

/** The `code` of the error `fn` throws, or 'no error' when it returns. */
export function code(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return (error as { code?: unknown }).code;
  }
  return 'no error';
}

/** The system page size, from `getconf` (independent of the addon). */
export const PAGE = Number(spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).stdout.trim()) || 4096;

export { mappingsAt } from '../../testkit/test/self.js';

/** Where a buffer or secret keeps its data (`[Symbol.for('secure-memory.region')]()`). */
export function locate(holder: object): RegionLocation {
  const probe = (holder as Record<symbol, unknown>)[REGION_PROBE];
  if (typeof probe !== 'function') throw new Error('no region probe');
  return probe.call(holder) as RegionLocation;
}

/**
 * Reads or writes this process's memory through /proc/self/mem, which ignores page protection (as
 * a debugger does): how a test damages a canary without native code of its own.
 */
export function pokeSelf(address: bigint, value: number): void {
  const fd = openSync('/proc/self/mem', 'r+');
  try {
    writeSync(fd, Uint8Array.of(value), 0, 1, Number(address));
  } finally {
    closeSync(fd);
  }
}

/** One byte of this process's memory, through /proc/self/mem. */
export function peekSelf(address: bigint): number {
  const fd = openSync('/proc/self/mem', 'r');
  try {
    const out = new Uint8Array(1);
    readSync(fd, out, 0, 1, Number(address));
    return out[0] as number;
  } finally {
    closeSync(fd);
  }
}

export const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Child processes import the built package; fail clearly when it is missing. */
export function assertBuilt(): void {
  const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  if (!existsSync(dist)) throw new Error('build the package first (npm run build): fixtures import dist/');
}

export const isRoot = process.getuid?.() === 0;
export const hasSetpriv = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));

/** Runs a fixture with node; `wrap` puts commands (prlimit, setpriv) in front, `node` options after node. */
export function runFixture(
  name: string,
  args: string[] = [],
  { wrap = [], node = [], timeout = 600_000 }: { wrap?: string[]; node?: string[]; timeout?: number } = {},
): SpawnSyncReturns<string> {
  const command = [...wrap, process.execPath, ...node, fixture(name), ...args];
  return spawnSync(command[0] as string, command.slice(1), { encoding: 'utf8', timeout });
}

/** The last JSON line a fixture printed. */
export function lastJson<T>(result: SpawnSyncReturns<string>): T {
  const line = result.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .at(-1);
  if (line === undefined) throw new Error(`no JSON from the fixture (status ${result.status}, signal ${result.signal}): ${result.stderr}`);
  return JSON.parse(line) as T;
}

