// Worker threads share the process's mapping budget (issue #13 item 6): core's MapBudget, counted from /proc/self/maps.
import { spawnSync } from 'node:child_process';
import { mapReserve } from '@secure-memory/core/backend';
import { describe, expect, it } from 'vitest';
import { probeFixture } from '../../testkit/test/outside.js';

const fixture = probeFixture('workers-maplimit.mjs');

describe.skipIf(process.getuid?.() !== 0)('worker threads', () => {
  it("three workers (lock: 'best-effort') making secrets at once up to vm.max_map_count each get ERR_MAP_LIMIT; none dies, the process does not abort", () => {
    // As root, so that the locks hold and only mappings run out; the fixture leaves 20,000 mappings before the limit.
    const child = spawnSync(process.execPath, [fixture, '@secure-memory/sodium', JSON.stringify({ lock: 'best-effort' })], { encoding: 'utf8', timeout: 600_000 });
    expect(child.signal, child.stderr).toBeNull();
    expect(child.status, child.stderr).toBe(0);
    const report = JSON.parse(child.stdout.trim().split('\n').at(-1) as string) as { codes: string[]; made: number[]; errors: string[]; peak: number; max: number; inUse: number[] };
    expect(report.errors).toEqual([]);
    expect(report.codes).toEqual(['ERR_MAP_LIMIT', 'ERR_MAP_LIMIT', 'ERR_MAP_LIMIT']);
    expect(report.made.reduce((a, b) => a + b, 0)).toBeGreaterThan(3_000);
    expect(report.max - report.peak).toBeGreaterThan(mapReserve(report.max) / 2);
    expect(report.inUse).toEqual([0, 0, 0]);
  });
});
