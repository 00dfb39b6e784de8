/**
 * Core-dump scanning: `gcore` (from gdb) writes a core of the live process into a private
 * temporary directory, the file is searched in overlapping chunks and deleted at once. gcore
 * honours MADV_DONTDUMP, as the kernel does.
 * @module
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Mapping, describeMapping } from './proc.js';
import { PlaintextSearch, type WindowHit } from './search.js';

/** What a core-dump scan saw. */
export type CoreScan =
  | { available: true; hits: number[]; coreBytes: number; durationMs: number }
  | { available: false; reason: string };

let gcoreChecked: string | undefined | null = null;

/** Why core dumps cannot be taken here, or `undefined` when `gcore` works. */
export function coreDumpUnavailable(): string | undefined {
  if (gcoreChecked === null) {
    const probe = spawnSync('sh', ['-c', 'command -v gcore && command -v gdb'], { encoding: 'utf8' });
    gcoreChecked = probe.status !== 0 ? 'gcore and gdb are not installed (apt-get install gdb)' : undefined;
  }
  return gcoreChecked;
}

/** Counts, per needle, how often it occurs in a file. */
export function countInFile(path: string, needles: readonly Uint8Array[], chunkSize = 16 << 20): number[] {
  const overlap = Math.max(0, ...needles.map((n) => n.byteLength)) - 1;
  const buffer = Buffer.allocUnsafe(chunkSize + overlap);
  const counts = needles.map(() => 0);
  const fd = openSync(path, 'r');
  try {
    let kept = 0;
    for (;;) {
      const n = readSync(fd, buffer, kept, chunkSize, null);
      const view = buffer.subarray(0, kept + n);
      needles.forEach((needle, index) => {
        // Hits that start in the carried-over tail were counted with the previous chunk.
        for (let i = view.indexOf(needle); i !== -1; i = view.indexOf(needle, i + 1)) {
          if (i + needle.byteLength > kept) counts[index] = (counts[index] as number) + 1;
        }
      });
      if (n === 0) break;
      kept = Math.min(overlap, view.byteLength);
      view.copy(buffer, 0, view.byteLength - kept);
    }
  } finally {
    closeSync(fd);
  }
  return counts;
}

/**
 * Takes a core of process `pid` with gcore, counts each needle in it, and deletes it.
 * The process is stopped for the time gcore needs (about 2 s for a Node process).
 */
export function scanCoreDump(pid: number, needles: readonly Uint8Array[]): CoreScan {
  const missing = coreDumpUnavailable();
  if (missing !== undefined) return { available: false, reason: missing };
  return dumpAndSearch(pid, undefined, (path) => countInFile(path, needles));
}

/**
 * Takes a core of process `pid` with gcore in a private temporary directory, searches it with
 * `search`, and deletes it, also when the search throws. A gcore that runs out of time
 * ({@link GCORE_TIMEOUT_MS}) is named with how far it got (of `expectedBytes`, when known).
 */
function dumpAndSearch<H>(
  pid: number,
  expectedBytes: number | undefined,
  search: (path: string) => H[],
): { available: true; hits: H[]; coreBytes: number; durationMs: number } | { available: false; reason: string } {
  const dir = mkdtempSync(join(tmpdir(), 'secure-memory-core-'));
  const started = Date.now();
  try {
    const run = spawnSync('gcore', ['-o', join(dir, 'core'), String(pid)], { encoding: 'utf8', timeout: GCORE_TIMEOUT_MS, killSignal: 'SIGKILL' });
    const file = readdirSync(dir).find((f) => f.startsWith('core'));
    if (run.error !== undefined && (run.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') {
      const written = file === undefined ? 0 : statSync(join(dir, file)).size;
      const of = expectedBytes === undefined ? '' : ` of an expected ${(expectedBytes / 2 ** 20).toFixed(0)} MiB`;
      return { available: false, reason: `gcore of pid ${pid} timed out after ${GCORE_TIMEOUT_MS / 1000} s, having written ${(written / 2 ** 20).toFixed(0)} MiB${of}` };
    }
    if (file === undefined) {
      return { available: false, reason: `gcore wrote no core (exit ${run.status}): ${(run.stderr ?? '').trim().split('\n').pop() ?? ''}` };
    }
    const path = join(dir, file);
    const coreBytes = statSync(path).size;
    return { available: true, hits: search(path), coreBytes, durationMs: Date.now() - started };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What {@link scanCoreWindows} saw: copies found in a core (addresses are the process's), or why no core was taken. */
export type WindowCoreScan =
  | { available: true; hits: WindowHit[]; coreBytes: number; durationMs: number }
  | { available: false; reason: string; /** True when the core was not taken on purpose (too large), not for lack of a tool. */ tooLarge?: boolean };

/** Cores larger than this are not taken: the space of such a process is nearly all reservations that hold no data. */
export const CORE_SIZE_LIMIT = 2 ** 31;
/** How long gcore may run. */
const GCORE_TIMEOUT_MS = 120_000;

const NOT_DUMPED = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);

/** The bytes gcore writes for these mappings: all of each mapping not marked `dd`, resident or not. */
export function coreSize(mappings: readonly Mapping[]): number {
  let total = 0n;
  for (const m of mappings) if (!m.vmFlags.includes('dd') && !NOT_DUMPED.has(m.path)) total += m.end - m.start;
  return Number(total);
}

/** Searches each PT_LOAD segment of an ELF core for copies of the plaintexts, at the segment's address. */
export function searchCore(path: string, plaintexts: readonly Uint8Array[], chunkSize = 16 << 20): WindowHit[] {
  const search = new PlaintextSearch(plaintexts);
  const buffer = new Uint8Array(new ArrayBuffer(chunkSize + search.overlap));
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) throw new Error(`${path} is not a 64-bit ELF core`);
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.byteLength, phoff);
    for (let i = 0; i < phnum; i += 1) {
      const at = i * phentsize;
      if (table.readUInt32LE(at) !== 1) continue; // PT_LOAD
      const offset = table.readBigUInt64LE(at + 8);
      const vaddr = table.readBigUInt64LE(at + 16);
      const filesz = table.readBigUInt64LE(at + 32);
      for (let done = 0n; done < filesz; done += BigInt(chunkSize)) {
        const length = Number(filesz - done < BigInt(chunkSize + search.overlap) ? filesz - done : BigInt(chunkSize + search.overlap));
        const got = readSync(fd, buffer, 0, length, offset + done);
        search.feed(buffer.subarray(0, got), vaddr + done);
      }
    }
  } finally {
    closeSync(fd);
  }
  return search.hits();
}

/**
 * Takes a core of process `pid` with gcore (in a private temporary directory, deleted at once)
 * and searches it for every 16-byte window of the plaintexts, raw and encoded. A process whose
 * core would exceed {@link CORE_SIZE_LIMIT} (a WebAssembly.Memory reserves 10 GiB that gcore
 * writes out in full) is not dumped: the result says so, and the caller judges dumps from the
 * mappings' `dd` flags instead. A gcore that runs out of time is named with how far it got.
 */
export function scanCoreWindows(pid: number, plaintexts: readonly Uint8Array[], mappings: readonly Mapping[]): WindowCoreScan {
  const missing = coreDumpUnavailable();
  if (missing !== undefined) return { available: false, reason: missing };
  const size = coreSize(mappings);
  if (size > CORE_SIZE_LIMIT) {
    const largest = [...mappings].sort((a, b) => Number(b.end - b.start - (a.end - a.start)))[0] as Mapping;
    return {
      available: false,
      tooLarge: true,
      reason: `no core taken: gcore would write ${(size / 2 ** 30).toFixed(1)} GiB, mostly reservations that hold no data (largest: ${describeMapping(largest)}, ${((Number(largest.end - largest.start)) / 2 ** 30).toFixed(1)} GiB, ${largest.rss} bytes resident)`,
    };
  }
  return dumpAndSearch(pid, size, (path) => searchCore(path, plaintexts));
}
