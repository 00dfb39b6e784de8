// The outside-scan suites that every backend built on core runs the same way (issue #13 items 1, 5
// and 8): each makes secrets in a child (test/fixtures/backend/), lets it drop or end them, and
// scans the child's memory from outside for every 16-byte window of their bytes. A backend package
// calls each with its module specifier and the modes (name, options) it has.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { unprivileged } from '@secure-memory/testkit';
import { holdAndScan, pattern, windows } from './outside.js';

export type Modes = ReadonlyArray<readonly [name: string, options: Record<string, unknown>]>;

/** The worker suite runs as nobody under a memlock limit: root, with setpriv. */
const canDropPrivileges = process.getuid?.() === 0 && ['/usr/bin/setpriv', '/bin/setpriv'].some((path) => existsSync(path));
const seed = (range = 2 ** 31): number => (Math.random() * range) | 0;
const SOURCES = ['new Uint8Array(32)', 'Buffer.alloc(32)', 'Buffer.allocUnsafe(32) (pool slice)'];

/** `new()` of small heap sources leaves no copy of them (after close and GC); `control` options make the scan's positive control. */
export function describeIngestion(module: string, modes: Modes, control: Record<string, unknown>): void {
  describe('ingestion leaves no copy of a small source (outside scan of /proc/<pid>/mem after close and GC)', () => {
    it.each(modes)('%s: finds 0 copies of each source', async (_mode, options) => {
      const base = seed();
      const needles = SOURCES.map((_, i) => windows(pattern(base + i)));
      const { report, hits } = await holdAndScan('ingest.mjs', [module, JSON.stringify(options), String(base), 'clean'], needles);
      expect(report).toEqual({ wiped: true, inUse: 0 });
      expect(Object.fromEntries(SOURCES.map((s, i) => [s, hits[i]]))).toEqual(Object.fromEntries(SOURCES.map((s) => [s, 0])));
    });

    it('the control: a source whose .buffer was read first leaves a copy the scan finds', async () => {
      const base = seed();
      const needles = SOURCES.map((_, i) => windows(pattern(base + i)));
      const { report, hits } = await holdAndScan('ingest.mjs', [module, JSON.stringify(control), String(base), 'control'], needles);
      expect(report).toEqual({ wiped: true, inUse: 0 });
      // The abandoned heap copies (the scan's positive control); the garbage collector may reuse one of them, so at least one.
      expect((hits[0] as number) + (hits[1] as number)).toBeGreaterThan(0);
    });
  });
}

/** A secret dropped without close() is wiped and released by the garbage collector, with a warning. */
export function describeDropped(module: string, modes: Modes): void {
  describe('secrets dropped without close()', () => {
    it.each(modes)('%s: wiped and released after GC, with a warning; stats and VmLck back; an outside scan finds 0 copies', async (_mode, options) => {
      const base = seed();
      const needles = [0, 1, 2].map((i) => windows(pattern(base + i)));
      const { report, hits } = await holdAndScan('dropped.mjs', [module, JSON.stringify(options), String(base)], needles);
      expect(report).toEqual({
        during: 3,
        lockedDuring: true,
        inUse: 0,
        lockedBytes: 0,
        vmLckBack: true,
        warnings: ['SECURE_MEMORY_UNRELEASED', 'SECURE_MEMORY_UNRELEASED', 'SECURE_MEMORY_UNRELEASED'],
      });
      expect(hits).toEqual([0, 0, 0]);
    });
  });
}

/**
 * Secrets made in worker threads are wiped and released when the worker ends by `process.exit()`
 * or by `terminate()`: locked memory and stats are back by the time the application sees the
 * Worker's `exit` event, and an outside scan finds no copy. As nobody under a 64 KiB
 * RLIMIT_MEMLOCK that the workers' secrets fill, so the main thread's own `createRandom(32)`
 * after them fails unless they were released. `perWorker`: secrets each of the 4 workers makes.
 */
export function describeWorkerEnd(module: string, modes: Modes, perWorker: number): void {
  describe.skipIf(!canDropPrivileges).each(modes)('%s: secrets of a worker thread', (_mode, options) => {
    it.each(['exit', 'terminate'])('are wiped and released when the worker ends by %s; VmLck and stats back; 0 copies in an outside scan', async (how) => {
      const base = seed(2 ** 30);
      // Worker w fills its sources from the seeds base + 4w + i (test/fixtures/backend/worker-end.mjs).
      const needles = [0, 1, 2, 3].flatMap((w) => Array.from({ length: perWorker }, (_, i) => windows(pattern(base + 4 * w + i))));
      const wrap = unprivileged([], { memlock: 64 * 1024 });
      const { report, hits } = await holdAndScan('worker-end.mjs', [module, JSON.stringify(options), how, String(base), String(perWorker)], needles, [], wrap);
      expect(report).toMatchObject({ made: new Array(4).fill(perWorker), afterEnd: 0, created: 32, inUse: 0, vmLck: 0 });
      expect(report['lockedWhileHeld']).toBeGreaterThan(0);
      expect(hits).toEqual(new Array(4 * perWorker).fill(0));
    });
  });
}
