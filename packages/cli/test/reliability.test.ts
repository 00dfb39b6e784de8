// `secure-memory soak` and `secure-memory fuzz`, through the built command: the short soak of
// every backend and mode with its baselines asserted, and the failures each must report.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TARGETS } from '@secure-memory/cli';
import { beforeAll, describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const OVERLAP = fileURLToPath(new URL('../../testkit/test/fixtures/overlap-backend.mjs', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 600_000, maxBuffer: 16 << 20 });

/** Splits a printed replay command back into arguments (it quotes with single quotes). */
function replayArgs(line: string): string[] {
  const args = [...line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/'\\''/g, "'") : (m[2] as string)));
  expect(args.slice(0, 2)).toEqual(['secure-memory', 'fuzz']);
  return args.slice(1);
}

interface Sample {
  vmLck: number;
  mappings: number;
  protectedMappings: number | null;
  protectedBytes: number | null;
  fds: number;
  inUse: number;
  lockedBytes: number;
}

describe('secure-memory soak --ops 20000 (every backend and mode, 1000 live secrets)', () => {
  let result: ReturnType<typeof run>;
  let reports: { name: string; ok: boolean; operations: number; liveSecrets: number; before: Sample; after: Sample; samples: { inUse: number; vmLck: number }[]; checks: { name: string; ok: boolean; detail: string }[] }[];
  beforeAll(() => {
    result = run('soak', '--ops', '20000', '--json');
    reports = (JSON.parse(result.stdout) as { reports: typeof reports }).reports;
  }, 900_000);

  it('soaks every backend and mode of the registry, with progress on stderr', () => {
    expect(result.status, result.stderr).toBe(0);
    const soaked = DEFAULT_TARGETS.filter((t) => t.name !== 'control').map((t) => t.name);
    expect(reports.map((r) => r.name)).toEqual(soaked);
    expect(result.stderr).toContain(`[1/${soaked.length} ${soaked[0]}] baseline taken`);
  });

  it('held the live set during the run', () => {
    for (const r of reports) {
      expect(r.operations, r.name).toBeGreaterThanOrEqual(20_000);
      expect(r.samples.length, r.name).toBeGreaterThan(0);
      // 1000 live, and briefly up to 8 more: closed secrets whose async accesses are still pending.
      expect(r.samples.every((s) => s.inUse >= 1000 && s.inUse <= 1008), r.name).toBe(true);
    }
    // Locking backends held locked memory for their live secrets, beyond the baseline.
    for (const name of ['protected-memory', 'memguard (locked)', 'sodium']) {
      const r = reports.find((x) => x.name === name)!;
      expect(Math.max(...r.samples.map((s) => s.vmLck)), name).toBeGreaterThan(r.before.vmLck + 1000 * 4096 / 2);
    }
  });

  it('VmLck, the backend mappings and open descriptors are back at their baseline exactly; nothing in use', () => {
    for (const r of reports) {
      expect(r.after.vmLck, `${r.name} VmLck`).toBe(r.before.vmLck);
      // Bytes, not the count: the kernel merges adjacent mappings with the same flags.
      expect(r.after.protectedBytes, `${r.name} backend mapped bytes`).toBe(r.before.protectedBytes);
      expect(r.after.fds, `${r.name} fds`).toBe(r.before.fds);
      expect(r.after.inUse, r.name).toBe(0);
      expect(r.after.lockedBytes, r.name).toBe(r.before.lockedBytes);
    }
  });

  it('every check passes: memory flat, every read matched', () => {
    for (const r of reports) {
      expect(r.checks.filter((c) => !c.ok), r.name).toEqual([]);
      expect(r.checks.length, r.name).toBeGreaterThanOrEqual(9);
      expect(r.ok, r.name).toBe(true);
    }
  });
});

describe('secure-memory soak catches leaks', () => {
  it('locked pages that are never unmapped: VmLck and the backend mappings do not come back (exit 1)', () => {
    const result = run('soak', '--backend', fixture('leaky-backend.mjs'), '--options', '{"leak":"locked"}', '--ops', '5000', '--secrets', '100');
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/NOT OK/);
    expect(result.stdout).toMatch(/- VmLck \(bytes locked\): \d+ B -> \d+ B \(not back to the baseline\)/);
  });

  it('descriptors that are never closed (exit 1)', () => {
    const result = run('soak', '--backend', fixture('leaky-backend.mjs'), '--options', '{"leak":"fd"}', '--ops', '5000', '--secrets', '100', '--json');
    expect(result.status).toBe(1);
    const [report] = (JSON.parse(result.stdout) as { reports: { checks: { name: string; ok: boolean }[] }[] }).reports;
    expect(report?.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['open file descriptors']);
  });
});

describe('secure-memory fuzz', () => {
  it('prints the seed first and fuzzes a backend (exit 0)', () => {
    const result = run('fuzz', '--backend', 'protected-memory', '--runs', '30', '--json');
    expect(result.status, result.stderr).toBe(0);
    const seed = /^secure-memory fuzz: seed (-?\d+)$/m.exec(result.stderr.split('\n')[0] ?? '')?.[1];
    expect(seed).toBeDefined();
    const report = JSON.parse(result.stdout) as { seed: number; reports: { ok: boolean; numRuns: number; commandsRun: number; operations: number }[] };
    expect(report.seed).toBe(Number(seed));
    expect(report.reports).toHaveLength(1);
    expect(report.reports[0]).toMatchObject({ ok: true, numRuns: 30 });
    expect(report.reports[0]?.operations).toBeGreaterThan(report.reports[0]?.commandsRun ?? 0);
  });

  it('prints the failing seed, path and shrunk sequence, and the replay command reproduces it (exit 1)', () => {
    const result = run('fuzz', '--backend', OVERLAP, '--seed', '424242', '--runs', '200');
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/^seed 424242$/m);
    expect(result.stdout).toMatch(/FAILED/);
    expect(result.stdout).toMatch(/shrunk command sequence:\n {3}1\. /);
    const sequence = /shrunk command sequence:\n((?: +\d+\. .*\n)+)/.exec(result.stdout)?.[1];
    expect(sequence).toBeDefined();
    const replay = /^replay: (.*)$/m.exec(result.stdout)?.[1] as string;
    expect(replay).toMatch(/--seed 424242 --path \d+(:\d+)* --replay-path /);

    const again = run(...replayArgs(replay));
    expect(again.status).toBe(1);
    expect(again.stdout).toContain(sequence);
  });

  it('reports a crash with its seed and the run that crashed, and the replay crashes the same way (exit 1)', () => {
    const result = run('fuzz', '--backend', fixture('crashing-backend.mjs'), '--seed', '5', '--runs', '50');
    expect(result.status).toBe(1);
    expect(result.stdout).toMatch(/CRASHED/);
    expect(result.stdout).toMatch(/was killed by SIGSEGV during run \d+ \(seed 5, path "\d+"\)/);
    const replay = /^replay: (.*)$/m.exec(result.stdout)?.[1] as string;
    const again = run(...replayArgs(replay));
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/was killed by SIGSEGV/);
  });

  it('exits 2 for bad usage', () => {
    expect(run('fuzz', '--runs', '0').status).toBe(2);
    expect(run('fuzz', '--seed', 'x').status).toBe(2);
    expect(run('fuzz', '--path', '3').status).toBe(2);
    expect(run('fuzz', '--seed', '1', '--replay-path', 'AA:B').status).toBe(2);
    expect(run('soak', '--ops', '-5').status).toBe(2);
    expect(run('soak', '--secrets', 'many').status).toBe(2);
    expect(run('soak', '--options', '{}').status).toBe(2);
  });
});
