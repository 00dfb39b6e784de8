/**
 * Reading another process's memory from outside: /proc/<pid>/smaps for the mappings and their
 * VmFlags, /proc/<pid>/mem for the bytes. Linux only; needs ptrace rights over the process (root,
 * or the same user with a permissive yama ptrace_scope).
 * @module
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { type Mapping, findMapping, readMappings } from '@secure-memory/system';
import { PlaintextSearch, type WindowHit } from './search.js';

export { type Mapping, findMapping, readMappings };

/** True for memfd_secret memory, which the kernel keeps out of its direct map. */
export function isSecretMemory(mapping: Pick<Mapping, 'path'>): boolean {
  return mapping.path.startsWith('/secretmem');
}

/** A compact, JSON-friendly description of a mapping. */
export function describeMapping(m: Mapping): string {
  const flags = m.vmFlags.filter((f) => ['lo', 'dd', 'wf', 'dc', 'io'].includes(f)).join(' ');
  return `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.path || '[anon]'}${flags ? ` {${flags}}` : ''}`;
}

/** Pseudo-mappings that cannot or need not be read. */
const SKIPPED = new Set(['[vvar]', '[vvar_vclock]', '[vsyscall]']);

/** One place where a needle was found. */
export interface Hit {
  /** Which needle (index into the list searched for). */
  needle: number;
  address: bigint;
  mapping: Mapping;
}

/** What a memory scan saw. */
export interface MemoryScan {
  hits: Hit[];
  /** Bytes read. */
  scannedBytes: number;
  /** Mappings that could not be read, with the error code. */
  unreadable: { mapping: Mapping; code: string }[];
}

/** Reads `length` bytes at `address` of process `pid` through an open /proc/<pid>/mem descriptor. */
function readAt(fd: number, address: bigint, target: Uint8Array, length: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, target, done, length - done, address + BigInt(done));
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Searches every resident mapping of process `pid` for each needle, in chunks that overlap by the
 * longest needle so that nothing straddling a chunk boundary is missed.
 */
export function scanMemory(pid: number, needles: readonly Uint8Array[], chunkSize = 8 << 20): MemoryScan {
  const mappings = readMappings(pid);
  const overlap = Math.max(0, ...needles.map((n) => n.byteLength)) - 1;
  const buffer = Buffer.allocUnsafe(chunkSize + overlap);
  const result: MemoryScan = { hits: [], scannedBytes: 0, unreadable: [] };
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const mapping of mappings) {
      if (SKIPPED.has(mapping.path) || (mapping.rss === 0 && mapping.swap === 0)) continue;
      try {
        for (let at = mapping.start; at < mapping.end; at += BigInt(chunkSize)) {
          const length = Number(
            (at + BigInt(chunkSize + overlap) > mapping.end ? mapping.end - at : BigInt(chunkSize + overlap)),
          );
          const got = readAt(fd, at, buffer, length);
          result.scannedBytes += Math.min(got, chunkSize);
          const view = buffer.subarray(0, got);
          needles.forEach((needle, index) => {
            for (let i = view.indexOf(needle); i !== -1; i = view.indexOf(needle, i + 1)) {
              // A hit inside the overlap is found again by the next chunk, unless this is the last one.
              if (i >= chunkSize) break;
              result.hits.push({ needle: index, address: at + BigInt(i), mapping });
            }
          });
        }
      } catch (error) {
        result.unreadable.push({ mapping, code: (error as NodeJS.ErrnoException).code ?? String(error) });
      }
    }
  } finally {
    closeSync(fd);
  }
  return result;
}

/** Tries to read `size` bytes at `address` of process `pid`; returns the error code, or `undefined` when the read succeeded. */
export function tryReadRegion(pid: number, address: bigint, size: number): string | undefined {
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const got = readAt(fd, address, Buffer.alloc(size), size);
    return got === size ? undefined : 'SHORT_READ';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  } finally {
    closeSync(fd);
  }
}

/** A copy found by {@link scanProcess}, with the mapping that holds it. */
export interface WindowScanHit extends WindowHit {
  mapping: Mapping;
}

/** What {@link scanProcess} saw. */
export interface WindowScan {
  hits: WindowScanHit[];
  scannedBytes: number;
  /** Mappings that could hold data but could not be read (such as memfd_secret memory), with the error code. */
  unreadable: { mapping: Mapping; code: string }[];
  mappings: Mapping[];
}

/**
 * Searches every resident mapping of process `pid` for copies of the plaintexts: every 16-byte
 * window, raw and encoded (see {@link PlaintextSearch}). Mappings with nothing resident or swapped
 * hold no data and are skipped, so huge reservations (a WebAssembly.Memory) cost nothing.
 */
export function scanProcess(pid: number, plaintexts: readonly Uint8Array[], chunkSize = 8 << 20): WindowScan {
  const mappings = readMappings(pid);
  const search = new PlaintextSearch(plaintexts);
  const buffer = new Uint8Array(new ArrayBuffer(chunkSize + search.overlap));
  const result: WindowScan = { hits: [], scannedBytes: 0, unreadable: [], mappings };
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const scan = (mapping: Mapping): void => {
    for (let at = mapping.start; at < mapping.end; at += BigInt(chunkSize)) {
      const length = Number(at + BigInt(chunkSize + search.overlap) > mapping.end ? mapping.end - at : BigInt(chunkSize + search.overlap));
      const got = readAt(fd, at, buffer, length);
      result.scannedBytes += Math.min(got, chunkSize);
      search.feed(buffer.subarray(0, got), at);
    }
  };
  try {
    for (const mapping of mappings) {
      if (SKIPPED.has(mapping.path) || (mapping.rss === 0 && mapping.swap === 0)) continue;
      try {
        scan(mapping);
      } catch (error) {
        // The process may have changed its mappings since smaps was read (a region unmapped, a
        // mapping split): read what lies in that range now, and keep only what still fails.
        for (const now of readMappings(pid).filter((m) => m.start < mapping.end && m.end > mapping.start && !SKIPPED.has(m.path))) {
          try {
            scan(now);
          } catch (again) {
            result.unreadable.push({ mapping: now, code: (again as NodeJS.ErrnoException).code ?? String(again ?? error) });
          }
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  result.mappings = readMappings(pid);
  result.hits = search.hits().map((h) => ({ ...h, mapping: (findMapping(mappings, h.address) ?? findMapping(result.mappings, h.address)) as Mapping }));
  return result;
}
