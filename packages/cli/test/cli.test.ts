import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

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
