// `secure-memory bench`: the shape of its report and invariants that hold whatever the machine's
// speed (fields present and finite, a floor for each operation that has one, system calls counted),
// never figures or time budgets. The harness's statistics are tested on their own.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BenchReport } from '../src/bench.js';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const haveStrace = spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0;

describe('the harness statistics', () => {
  it('takes per-round ratios, their median and interquartile range; null when a side is missing or unequal', async () => {
    const { quantile, ratios } = await import('../dist/bench-harness.js');
    expect(quantile([5, 1, 3], 0.5)).toBe(3);
    expect(quantile([4, 1, 3, 2, 5], 0.25)).toBe(2);
    // Per-round ratios (1, 4, 1, 2, 1: median 1), not the ratio of the medians (30 / 10 = 3).
    const r = ratios([10, 40, 30, 60, 30], [10, 10, 30, 30, 30]);
    expect(r).toEqual({ median: 1, spread: 1 });
    expect(ratios([1, 2], [1])).toBeNull();
    expect(ratios(undefined, [1])).toBeNull();
    expect(ratios([1], [0])).toBeNull();
  });
});

describe('the harness calibration', () => {
  it("sizes a case's batches by its own operations, not by work an earlier case left for a later turn", async () => {
    const { measureRounds } = await import('../dist/bench-harness.js');
    const busy = (ms: number): void => {
      const end = performance.now() + ms;
      while (performance.now() < end) {
        // what sodium-native's deferred frees of 10,000 live buffers did to the next case: 0.2 s on a later turn
      }
    };
    const leaves = { id: 'a', name: 'a', backend: 'a', mode: 'x', operation: 'leaves work', role: 'backend' as const, setup: () => ({ kind: 'sync' as const, op: () => 0, teardown: () => void setImmediate(() => busy(50)) }) };
    const next = { id: 'b', name: 'b', backend: 'b', mode: 'x', operation: 'cheap', role: 'backend' as const, setup: () => ({ kind: 'sync' as const, op: () => 0, teardown: () => {} }) };
    const plan = { rounds: 1, batchMs: 5, warmupMs: 5, liveSecrets: [], syscallOps: 0, capacityCap: 0 };
    const clocks = { cpu: () => Number(process.hrtime.bigint()), cpuClock: 'process' as const };
    await measureRounds([leaves], plan, clocks, () => {});
    const samples = await measureRounds([next], plan, clocks, () => {});
    // Calibrated on the 50 ms left behind, the batch would be one operation.
    expect(samples.get('b')?.batch).toBeGreaterThan(1);
  });
});

describe('secure-memory bench --short --json', () => {
  let report: BenchReport;
  let stderr: string;
  beforeAll(() => {
    const result = spawnSync(process.execPath, [BIN, 'bench', '--short', '--json'], { encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20 });
    expect(result.status, result.stderr).toBe(0);
    report = JSON.parse(result.stdout) as BenchReport;
    stderr = result.stderr;
  });

  const result = (name: string, operation: string) => report.results.find((r) => r.name === name && r.operation === operation);

  it('reports the machine, the plan, the clocks, floors and results; progress goes to stderr', () => {
    expect(report.machine).toHaveProperty('kernel');
    expect(report.plan.rounds).toBeGreaterThan(1);
    // The floor addon is built in this repository (a development build): thread CPU time and floors.
    expect(report.clocks.cpu).toBe('thread');
    expect(report.clocks.syscalls).toBe(haveStrace ? 'strace' : null);
    expect(report.floors.length).toBeGreaterThan(0);
    expect(stderr).toMatch(/\[1\/\d+\]/);
    expect(stderr).toMatch(/round 1\/\d+/);
  });

  it('gives every result its fields, finite; ratios and spreads wherever a floor or a peer was measured', () => {
    for (const r of report.results) {
      const label = `${r.name} ${r.operation}`;
      for (const key of ['backend', 'mode', 'operation', 'medianNs', 'ratioToFloor', 'ratioSpread', 'ratioToPeer', 'syscallsPerOp'] as const) expect(r, label).toHaveProperty(key);
      expect(Number.isFinite(r.medianNs) && r.medianNs > 0, label).toBe(true);
      expect(Number.isFinite(r.medianWallNs) && r.medianWallNs > 0, label).toBe(true);
      expect(r.rounds, label).toBe(report.plan.rounds);
      if (r.floor !== null) {
        expect(Number.isFinite(r.ratioToFloor) && (r.ratioToFloor as number) > 0, label).toBe(true);
        expect(Number.isFinite(r.ratioSpread) && (r.ratioSpread as number) >= 0, label).toBe(true);
        expect(Number.isFinite(r.ratioToFloorWall) && (r.ratioToFloorWall as number) > 0, label).toBe(true);
      } else {
        expect(r.ratioToFloor, label).toBeNull();
      }
      if (r.peer !== null) expect(Number.isFinite(r.ratioToPeer) && (r.ratioToPeer as number) > 0, label).toBe(true);
      else expect(r.ratioToPeer, label).toBeNull();
    }
  });

  it('has a floor for each contract operation of the backends whose sequence it knows, and for the raw sodium-native peer', () => {
    const expected: Array<[string, string, string]> = [
      ['protected-memory', 'page', 'protected-memory page'],
      ['protected-memory', 'slab', 'protected-memory slab slot'],
      ['memguard', 'locked', 'memguard locked buffer'],
      ['sodium', 'default', 'sodium_malloc + noaccess pair + sodium_free'],
      ['sodium-native', 'raw', 'sodium_malloc + sodium_free'],
    ];
    for (const [backend, mode, allocFloor] of expected) {
      for (const operation of ['withBytes', 'withBytesAsync', 'newClose', 'createRandomClose']) {
        const floor = report.floors.find((f) => f.backend === backend && f.mode === mode && f.operation === operation);
        expect(floor, `${backend} ${mode} ${operation}`).toBeDefined();
        const access = backend === 'memguard' ? 'access (guarded page, memguard layout)' : 'access (1 page)';
        expect(floor?.floor).toBe(operation.startsWith('withBytes') ? access : allocFloor);
        expect(Number.isFinite(floor?.medianNs) && (floor?.medianNs as number) > 0).toBe(true);
      }
    }
    // memguard's enclave mode: an access against the same work in C (four mprotect around an open and a wipe).
    const enclave = report.floors.find((f) => f.backend === 'memguard' && f.mode === 'enclave' && f.operation === 'withBytes');
    expect(enclave?.calls).toEqual([
      'mprotect(page 1, readwrite)',
      'openBytes 32 B',
      'mprotect(page 1, read)',
      'read(page 1)',
      'mprotect(page 1, readwrite)',
      'wipe 32 B',
      'mprotect(page 1, none)',
    ]);
    // An access floor reads its page between the protections; an allocation floor maps and unmaps.
    const access = report.floors.find((f) => f.floor === 'access (1 page)');
    expect(access?.calls).toEqual(['mprotect(page 0, read)', 'read(page 0)', 'mprotect(page 0, none)']);
    const alloc = report.floors.find((f) => f.floor === 'protected-memory page');
    expect(alloc?.calls[0]).toBe('mmap(1 pages, readwrite)');
    expect(alloc?.calls.at(-1)).toBe('munmap');
    expect(alloc?.calls.some((c) => c.startsWith('munlock'))).toBe(false); // protected-memory's close: munmap unlocks
  });

  it.runIf(haveStrace)('counts system calls: new+close makes some, and the peer\'s deferred sodium_free runs inside the counted batch', () => {
    for (const r of report.results.filter((x) => x.operation === 'newClose' && x.floor !== null)) {
      expect(r.syscallsPerOp, r.name).toBeGreaterThan(0);
      expect(r.syscalls?.mmap ?? 0, r.name).toBeGreaterThan(0);
    }
    for (const f of report.floors.filter((x) => x.operation === 'newClose')) expect(f.syscallsPerOp, f.floor).toBeGreaterThan(0);
    // sodium-native 5 frees on a later turn of the event loop: drained, its munmap is counted per operation.
    const peer = result('peer:sodium-native', 'newClose');
    expect(peer?.syscalls?.munmap ?? 0).toBeGreaterThan(0.5);
    // An access is the protection pair and nothing else, for every page-based backend.
    expect(result('protected-memory', 'withBytes')?.syscalls?.mprotect).toBeGreaterThan(0);
    // protected-memory's close unmaps without munlock (munmap unlocks), as its floor does.
    expect(result('protected-memory', 'newClose')?.syscalls?.munmap).toBeGreaterThan(0.5);
    expect(result('protected-memory', 'newClose')?.syscalls?.munlock).toBeUndefined();
  });

  it("measures raw sodium-native's new+close among as many live buffers as the sodium backend's, and links the backend's rows to them", () => {
    expect(report.plan.liveSecrets.length).toBeGreaterThan(0);
    for (const count of report.plan.liveSecrets) {
      const operation = `newClose@${count}live`;
      const peer = result('peer:sodium-native', operation);
      expect(peer, operation).toBeDefined();
      expect(peer?.floor, operation).toBe('sodium_malloc + sodium_free');
      expect(peer?.ratioToFloor, operation).toBeGreaterThan(0);
      const backend = result('sodium', operation);
      expect(backend?.peer, operation).toBe('peer:sodium-native');
      expect(backend?.ratioToPeer, operation).toBeGreaterThan(0);
    }
  });

  it('runs the crypto workload per backend against node:crypto with a heap key', () => {
    for (const operation of ['seal100B', 'open100B', 'seal10KiB', 'open10KiB', 'envelopeRecord']) {
      expect(result('peer:node:crypto', operation), operation).toBeDefined();
      for (const name of ['protected-memory', 'memguard (locked)', 'sodium']) {
        const r = result(name, operation);
        expect(r?.peer, `${name} ${operation}`).toBe('peer:node:crypto');
        expect(r?.ratioToPeer).toBeGreaterThan(0);
      }
    }
    expect(result('sodium', 'seal10KiB')?.throughputMBps).toBeGreaterThan(0);
  });

  it("includes memguard's Enclave operations, with throughput for 1 MiB", () => {
    const memguard = report.results.filter((r) => r.name === 'memguard').map((r) => r.operation);
    expect(memguard).toEqual(['enclaveOpenDestroy', 'seal1MiB', 'open1MiB']);
    for (const r of report.results.filter((x) => x.operation.endsWith('1MiB'))) {
      expect(r.throughputMBps).toBeGreaterThan(0);
      // against OpenSSL's ChaCha20-Poly1305 on 1 MiB in C, in the same rounds
      expect(r.floor, r.operation).toMatch(/^OpenSSL (seal|open) 1 MiB/);
      expect(r.ratioToFloor).toBeGreaterThan(0);
      // and against a floor doing all of its work (out of place, with the wipe), in the same rounds
      expect(r.sameWorkFloor, r.operation).toMatch(/^OpenSSL (seal|open) 1 MiB.*wipe/);
      expect(r.ratioToSameWork).toBeGreaterThan(0);
      expect(report.floors.some((f) => f.operation === r.operation && f.floor === r.sameWorkFloor)).toBe(true);
    }
  });

  it('formats a table with a row per result and the floors with their calls', async () => {
    const { formatBench } = await import('../dist/bench-format.js');
    const text = formatBench(report);
    for (const r of report.results) expect(text).toMatch(new RegExp(`${r.name.replace(/[()]/g, '\\$&')}\\s+${r.operation}\\s`));
    expect(text).toContain('mprotect(page 0, read), read(page 0), mprotect(page 0, none)');
  });

  it.skipIf(process.getuid?.() !== 0)('measures capacity as nobody: a page per secret stops at the memlock limit, slabs go far past it', () => {
    const page = report.capacity.find((c) => c.backend === 'protected-memory');
    const slab = report.capacity.find((c) => c.backend === 'protected-memory (slab)');
    expect(page).toMatchObject({ stoppedBy: 'ERR_MEMLOCK_LIMIT', unprivileged: true });
    expect(page?.lockedBytesPerSecret).toBeGreaterThanOrEqual(4096);
    expect(slab?.secrets).toBeGreaterThan((page?.secrets ?? 0) * 5);
    expect(slab?.lockedBytesPerSecret).toBeLessThan(100);
  });

  it('reports the resident memory each live secret costs, for every backend', () => {
    expect(report.capacity.length).toBeGreaterThan(0);
    for (const c of report.capacity) {
      // every live secret holds at least its own 32 bytes somewhere: the growth cannot be 0 or less
      expect(c.rssBytesPerSecret, c.backend).toBeGreaterThan(0);
      expect(Number.isFinite(c.rssBytesPerSecret), c.backend).toBe(true);
    }
  });
});
