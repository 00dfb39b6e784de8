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
  const dir = mkdtempSync(join(tmpdir(), 'secure-memory-core-'));
  const started = Date.now();
  try {
    const run = spawnSync('gcore', ['-o', join(dir, 'core'), String(pid)], { encoding: 'utf8', timeout: 120_000 });
    const file = readdirSync(dir).find((f) => f.startsWith('core'));
    if (file === undefined) {
      return { available: false, reason: `gcore wrote no core (exit ${run.status}): ${(run.stderr ?? '').trim().split('\n').pop() ?? ''}` };
    }
    const path = join(dir, file);
    const coreBytes = statSync(path).size;
    return { available: true, hits: countInFile(path, needles), coreBytes, durationMs: Date.now() - started };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
