/**
 * An outside scan for many needles at once: every 16-byte window of many keys, in the memory of a
 * child process (/proc/<pid>/mem, mappings from the testkit's readMappings) and in its core dump
 * (gcore). The testkit's scanners search needle by needle; a thousand windows over a Node
 * process's memory need one pass instead: a rolling 32-bit prefix, a 2^24-bit filter, then a full
 * compare.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readMappings, type Mapping } from '@secure-memory/testkit';

/** Bytes of a window. */
const WINDOW = 16;

/** Every 16-byte window of `key` (a 32-byte key has 17). */
function windowsOf(key: Uint8Array): Buffer[] {
  const windows: Buffer[] = [];
  for (let i = 0; i + WINDOW <= key.byteLength; i += 1) windows.push(Buffer.from(key.subarray(i, i + WINDOW)));
  return windows;
}

/** A set of 16-byte needles, each tagged with the key it belongs to. */
export class WindowSet {
  readonly #needles: Buffer[] = [];
  readonly #owners: string[] = [];
  readonly #filter = new Uint8Array(1 << 21);
  readonly #byPrefix = new Map<number, number[]>();

  /** Adds every window of `key`, tagged `owner`. */
  add(owner: string, key: Uint8Array): void {
    for (const needle of windowsOf(key)) {
      const index = this.#needles.push(needle) - 1;
      this.#owners.push(owner);
      const prefix = needle.readUInt32LE(0);
      const low = prefix & 0xffffff;
      this.#filter[low >>> 3] = (this.#filter[low >>> 3] as number) | (1 << (low & 7));
      const list = this.#byPrefix.get(prefix);
      if (list === undefined) this.#byPrefix.set(prefix, [index]);
      else list.push(index);
    }
  }

  get size(): number {
    return this.#needles.length;
  }

  /** Calls `hit(owner, offset)` for each needle found in `buffer[0, length)` starting before `limit`. */
  scan(buffer: Buffer, length: number, limit: number, hit: (owner: string, offset: number) => void): void {
    const filter = this.#filter;
    const last = Math.min(limit, length - WINDOW + 1);
    if (last <= 0) return;
    let v = (buffer[0] as number) | ((buffer[1] as number) << 8) | ((buffer[2] as number) << 16);
    for (let i = 0; i < last; i += 1) {
      v = (v & 0xffffff) | ((buffer[i + 3] as number) << 24);
      const low = v & 0xffffff;
      if (((filter[low >>> 3] as number) & (1 << (low & 7))) !== 0) {
        const list = this.#byPrefix.get(v >>> 0);
        if (list !== undefined) {
          for (const index of list) {
            if (buffer.compare(this.#needles[index] as Buffer, 0, WINDOW, i, i + WINDOW) === 0) hit(this.#owners[index] as string, i);
          }
        }
      }
      v >>>= 8;
    }
  }
}

/** A window found in memory. */
export interface MemoryHit {
  owner: string;
  address: bigint;
  /** Locked and left out of core dumps (`lo` and `dd` in VmFlags): protected memory. */
  protected: boolean;
  mapping: string;
}

const CHUNK = 8 << 20;
const SKIPPED = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);

function describe(m: Mapping): string {
  return `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.path || '[anon]'} {${m.vmFlags.join(' ')}}`;
}

/** Scans every resident mapping of `pid` through /proc/<pid>/mem. */
export function scanProcess(pid: number, needles: WindowSet): { hits: MemoryHit[]; scannedBytes: number } {
  const hits: MemoryHit[] = [];
  let scannedBytes = 0;
  const buffer = Buffer.allocUnsafe(CHUNK + WINDOW);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const mapping of readMappings(pid)) {
      if (SKIPPED.has(mapping.path) || (mapping.rss === 0 && mapping.swap === 0)) continue;
      const isProtected = mapping.vmFlags.includes('lo') && mapping.vmFlags.includes('dd');
      for (let at = mapping.start; at < mapping.end; at += BigInt(CHUNK)) {
        const want = Number(mapping.end - at < BigInt(CHUNK + WINDOW) ? mapping.end - at : BigInt(CHUNK + WINDOW));
        let got = 0;
        try {
          while (got < want) {
            const n = readSync(fd, buffer, got, want - got, at + BigInt(got));
            if (n === 0) break;
            got += n;
          }
        } catch {
          // An unreadable range (a guard page, PROT_NONE memory some kernels refuse): nothing to find there.
        }
        scannedBytes += Math.min(got, CHUNK);
        needles.scan(buffer, got, CHUNK, (owner, offset) => {
          hits.push({ owner, address: at + BigInt(offset), protected: isProtected, mapping: describe(mapping) });
        });
      }
    }
  } finally {
    closeSync(fd);
  }
  return { hits, scannedBytes };
}

/** Takes a core of `pid` with gcore, counts the windows of each owner in it, and deletes it. */
export function scanCore(pid: number, needles: WindowSet): { counts: Map<string, number>; coreBytes: number } {
  const dir = mkdtempSync(join(tmpdir(), 'crypto-core-'));
  try {
    const run = spawnSync('gcore', ['-o', join(dir, 'core'), String(pid)], { encoding: 'utf8', timeout: 600_000 });
    const file = readdirSync(dir).find((f) => f.startsWith('core'));
    if (file === undefined) throw new Error(`gcore wrote no core (exit ${run.status}): ${run.stderr}`);
    const counts = new Map<string, number>();
    let coreBytes = 0;
    const buffer = Buffer.allocUnsafe(CHUNK + WINDOW);
    const fd = openSync(join(dir, file), 'r');
    try {
      let kept = 0;
      for (;;) {
        const n = readSync(fd, buffer, kept, CHUNK, null);
        coreBytes += n;
        const length = kept + n;
        // The carried-over tail is shorter than a window: every whole window here is a new one.
        needles.scan(buffer, length, length, (owner) => {
          counts.set(owner, (counts.get(owner) ?? 0) + 1);
        });
        if (n === 0) break;
        kept = Math.min(WINDOW - 1, length);
        buffer.copy(buffer, 0, length - kept, length);
      }
    } finally {
      closeSync(fd);
    }
    return { counts, coreBytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
