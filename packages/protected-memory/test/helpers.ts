import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One mapping of /proc/self/smaps. */
export interface SmapsEntry {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  flags: string[];
  locked: number;
}

/** Parses /proc/self/smaps. */
function readSmaps(): SmapsEntry[] {
  const entries: SmapsEntry[] = [];
  let current: SmapsEntry | undefined;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head !== null) {
      current = { start: BigInt(`0x${head[1]}`), end: BigInt(`0x${head[2]}`), perms: head[3] ?? '', path: head[4] ?? '', flags: [], locked: 0 };
      entries.push(current);
    } else if (current !== undefined && line.startsWith('VmFlags:')) {
      current.flags = line.slice('VmFlags:'.length).trim().split(/\s+/);
    } else if (current !== undefined && line.startsWith('Locked:')) {
      current.locked = Number(/(\d+)/.exec(line)?.[1]) * 1024;
    }
  }
  return entries;
}

/** The smaps entry holding `address` (mappings of idle secrets may be merged into one entry). */
export function mappingAt(address: bigint): SmapsEntry {
  const entry = readSmaps().find((e) => e.start <= address && address < e.end);
  if (entry === undefined) throw new Error('address is not mapped');
  return entry;
}

/** True when nothing is mapped at `address`. */
export function unmapped(address: bigint): boolean {
  return !readSmaps().some((e) => e.start <= address && address < e.end);
}

/** test/fixtures/<name>, or `name` itself when it is an absolute path (the testkit's shared backend probes). */
export const fixture = (name: string): string => (isAbsolute(name) ? name : fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url)));

/** Child processes import the built package; fail clearly when it is missing. */
export function assertBuilt(): void {
  const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  if (!existsSync(dist)) throw new Error('build the package first (npx tsc -b): fixtures import dist/');
}

export const isRoot = process.getuid?.() === 0;
export const hasSetpriv = ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));

/** Runs a fixture with node; `wrap` puts commands (prlimit, setpriv) in front. */
export function runFixture(name: string, args: string[], wrap: string[] = []): SpawnSyncReturns<string> {
  const command = [...wrap, process.execPath, fixture(name), ...args];
  return spawnSync(command[0] as string, command.slice(1), { encoding: 'utf8', timeout: 600_000 });
}

/** The JSON line a fixture printed. */
export function output<T>(result: SpawnSyncReturns<string>): T {
  if (result.status !== 0) throw new Error(`fixture failed (status ${result.status}, signal ${result.signal}): ${result.stderr}`);
  return JSON.parse(result.stdout.trim()) as T;
}

/** The system page size, from `getconf` (the unit of every mapping). */
export const PAGE = Number(spawnSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).stdout.trim()) || 4096;

/**
 * Collects garbage and lets FinalizationRegistry callbacks run: a closed secret whose view was
 * handed to an action keeps its addresses until then. (gc is exposed at run time, not with
 * --expose-gc in execArgv, which Worker threads refuse.)
 */
export async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i += 1) {
    exposedGc()();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** The garbage collector's entry point, exposed at run time. */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
