import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 600_000 });

describe('command-line conventions', () => {
  it('--version and -v print the package version', () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) {
      const result = run(flag);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toBe(`${version}\n`);
    }
  });

  it('no command prints the help and exits 0, as --help does', () => {
    const none = run();
    expect(none.status).toBe(0);
    expect(none.stdout).toMatch(/^Usage: secure-memory <command>/);
    expect(run('--help').stdout).toBe(none.stdout);
  });

  it('an option the command does not take is a usage error (2), not ignored', () => {
    for (const args of [
      ['bench', '--backend', '@secure-memory/does-not-exist'],
      ['doctor', '--short'],
      ['report', '--backend', 'sodium'],
      ['conformance', '--seed', '1'],
    ]) {
      const result = run(...args);
      expect(result.status, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(/does not take --/);
    }
  });
});

describe('secure-memory doctor', () => {
  it('prints the machine facts as stable JSON', () => {
    const result = run('doctor', '--json');
    expect(result.status).toBe(0);
    const facts = JSON.parse(result.stdout) as Record<string, unknown>;
    for (const key of ['kernel', 'pageSize', 'memlockSoft', 'memlockHard', 'lockedNow', 'mappings', 'maxMapCount', 'corePattern', 'coreLimit', 'swap', 'memfdSecret', 'dumpable', 'ptraceScope', 'capacityPerPage', 'capacitySlab']) {
      expect(facts, key).toHaveProperty(key);
    }
    expect(facts.pageSize).toBeGreaterThan(0);
    expect(facts.dumpable).toBe(1);
    expect(facts.capacitySlab as number).toBeGreaterThan((facts.capacityPerPage as number) * 50);
    expect(facts.maxMapCount).toBeGreaterThan(facts.mappings as number);
  });

  it('prints a readable table', () => {
    const result = run('doctor');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^RLIMIT_MEMLOCK soft +\S+/m);
    expect(result.stdout).toMatch(/^vm\.max_map_count +\d+/m);
  });
});

describe('secure-memory conformance', () => {
  it('exits 0 with an ok JSON report for the control', () => {
    const result = run('conformance', '--backend', '@secure-memory/testkit/control', '--json');
    expect(result.status, result.stderr).toBe(0);
    const { reports } = JSON.parse(result.stdout) as { reports: { ok: boolean; guarantees: Record<string, { status: string }> }[] };
    expect(reports).toHaveLength(1);
    expect(reports[0]?.ok).toBe(true);
    expect(reports[0]?.guarantees.wipesOnClose?.status).toBe('absent');
    expect(result.stderr).toMatch(/scanning memory while idle/);
  });

  it('exits 1 and names the violated claim for a liar', () => {
    const result = run('conformance', '--backend', '@secure-memory/testkit/control', '--options', '{"claim":["lockedInRam"]}');
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/^lockedInRam +violated/m);
    expect(result.stdout).toMatch(/NOT OK/);
  });

  it('prints a report for a backend that cannot load, naming the module and the options', () => {
    const result = run('conformance', '--backend', '@secure-memory/no-such-backend', '--options', '{"mode":"x"}');
    expect(result.status).toBe(1);
    expect(result.stdout).toContain('@secure-memory/no-such-backend {"mode":"x"} on Node.js');
    expect(result.stdout).toMatch(/could not run loading the backend: ERR_BACKEND_UNAVAILABLE/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 1 for a backend that is not installed, and 2 for bad usage', () => {
    expect(run('conformance', '--backend', '@secure-memory/no-such-backend').status).toBe(1);
    expect(run('conformance', '--backend', 'x', '--options', '[1]').status).toBe(2);
    expect(run('conformance', '--options', '{}').status).toBe(2);
    expect(run('frobnicate').status).toBe(2);
    expect(run('doctor', '--bogus').status).toBe(2);
  });
});

describe('secure-memory bench', () => {
  let result: ReturnType<typeof run>;
  beforeAll(() => {
    result = run('bench', '--short', '--json');
  });

  it('emits the JSON schema: machine, floor, and one result per backend and operation', () => {
    expect(result.status, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as {
      machine: Record<string, unknown>;
      floor: { mprotectPairNs: number | null; guardedAllocNs: number | null };
      results: { backend: string; operation: string; medianNs: number; floor: string; ratioToFloor: number | null }[];
    };
    expect(report.machine).toHaveProperty('kernel');
    expect(Object.keys(report.floor)).toEqual(expect.arrayContaining(['mprotectPairNs', 'guardedAllocNs']));
    const backends = new Set(report.results.map((r) => r.backend));
    expect(backends).toContain('peer:buffer');
    for (const backend of [...backends].filter((b) => b !== 'memguard')) {
      const operations = report.results.filter((r) => r.backend === backend).map((r) => r.operation);
      expect(operations, backend).toEqual(expect.arrayContaining(['withBytes', 'withBytesAsync', 'newClose', 'createRandomClose']));
    }
    for (const r of report.results) {
      expect(r.medianNs, `${r.backend} ${r.operation}`).toBeGreaterThan(0);
      if (report.floor.mprotectPairNs !== null && r.floor !== 'none') expect(r.ratioToFloor).toBeGreaterThan(0);
    }
    expect(result.stderr).toMatch(/\[1\/\d+\]/);
  });

  it("includes memguard's Enclave operations, with throughput for 1 MiB", () => {
    const { results } = JSON.parse(result.stdout) as { results: { backend: string; operation: string; throughputMBps?: number }[] };
    const memguard = results.filter((r) => r.backend === 'memguard').map((r) => r.operation);
    expect(memguard).toEqual(['enclaveOpenDestroy', 'seal1MiB', 'open1MiB']);
    for (const r of results.filter((x) => x.operation.endsWith('1MiB'))) expect(r.throughputMBps).toBeGreaterThan(0);
  });

  it.skipIf(process.getuid?.() !== 0)('measures capacity as nobody: a page per secret stops at the memlock limit, slabs go far past it', () => {
    const { capacity } = JSON.parse(result.stdout) as { capacity: { backend: string; secrets: number; stoppedBy: string | null; unprivileged: boolean; lockedBytesPerSecret: number }[] };
    const page = capacity.find((c) => c.backend === 'protected-memory');
    const slab = capacity.find((c) => c.backend === 'protected-memory (slab)');
    expect(page).toMatchObject({ stoppedBy: 'ERR_MEMLOCK_LIMIT', unprivileged: true });
    expect(page?.lockedBytesPerSecret).toBeGreaterThanOrEqual(4096);
    expect(slab?.secrets).toBeGreaterThan((page?.secrets ?? 0) * 5);
    expect(slab?.lockedBytesPerSecret).toBeLessThan(100);
  });
});
