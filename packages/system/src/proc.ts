/**
 * The one reader of /proc/<pid>/smaps: the mappings of a process with their perms, resident and
 * swapped bytes and VmFlags. The process limits, /proc/<pid>/status fields and the map count are
 * read by `@secure-memory/core/backend` (`readResourceLimit`, `readStatusBytes`, `readMapCount`).
 * @module
 */
import { readFileSync } from 'node:fs';

/** One mapping of a process. */
export interface Mapping {
  start: bigint;
  end: bigint;
  /** Such as `rw-p`, `---p`, `r--s`. */
  perms: string;
  /** The file or pseudo-name (`[heap]`, `/secretmem (deleted)`), or '' for anonymous memory. */
  path: string;
  /** Resident bytes. */
  rss: number;
  /** Swapped-out bytes. */
  swap: number;
  /** The two-letter VmFlags: `lo` locked, `dd` not dumped, `wf` wiped on fork, `dc` not copied on fork... */
  vmFlags: string[];
}

/** Reads and parses /proc/<pid>/smaps. */
export function readMappings(pid: number | 'self'): Mapping[] {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  const mappings: Mapping[] = [];
  let current: Mapping | undefined;
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header !== null) {
      current = {
        start: BigInt(`0x${header[1]}`),
        end: BigInt(`0x${header[2]}`),
        perms: header[3] as string,
        path: (header[4] ?? '').trim(),
        rss: 0,
        swap: 0,
        vmFlags: [],
      };
      mappings.push(current);
    } else if (current !== undefined) {
      if (line.startsWith('Rss:')) current.rss = Number(line.slice(4).trim().split(/\s+/)[0]) * 1024;
      else if (line.startsWith('Swap:')) current.swap = Number(line.slice(5).trim().split(/\s+/)[0]) * 1024;
      else if (line.startsWith('VmFlags:')) current.vmFlags = line.slice(8).trim().split(/\s+/);
    }
  }
  return mappings;
}

/** The mapping that contains `address`, if any. */
export function findMapping(mappings: readonly Mapping[], address: bigint): Mapping | undefined {
  return mappings.find((m) => address >= m.start && address < m.end);
}
