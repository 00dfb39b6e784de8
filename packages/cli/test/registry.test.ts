// Core's backend registry (BACKENDS) is the one place a backend is named: its manifest bounds what
// the backend really claims, the command's targets and the README derive from it, and "auto" ranks
// by it, loading only the backend it keeps where the strongest works.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BACKENDS, type BackendOptionsFor, GUARANTEE_FLAGS, KNOWN_BACKENDS, claimedFlags, createSecretFactory, loadBackend } from '@secure-memory/core';
import type { MemguardOptions } from '@secure-memory/memguard';
import type { ProtectedMemoryOptions } from '@secure-memory/protected-memory';
import type { SodiumOptions } from '@secure-memory/sodium';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { DEFAULT_TARGETS } from '@secure-memory/cli';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const README = fileURLToPath(new URL('../../../README.md', import.meta.url));

describe('the registry', () => {
  it('names each backend once, with known flags and at least one mode', () => {
    expect(new Set(BACKENDS.map((b) => b.name)).size).toBe(BACKENDS.length);
    expect(new Set(BACKENDS.flatMap((b) => b.modes.map((m) => m.label))).size).toBe(BACKENDS.flatMap((b) => b.modes).length);
    for (const b of BACKENDS) {
      expect(b.claims.every((f) => (GUARANTEE_FLAGS as readonly string[]).includes(f)), b.name).toBe(true);
      expect(b.modes.length, b.name).toBeGreaterThan(0);
    }
    expect(KNOWN_BACKENDS).toEqual(Object.fromEntries(BACKENDS.map((b) => [b.name, b.module])));
  });

  it("bounds every manifest: with its defaults and in every mode, a backend claims only the registry's flags, under its own name", async () => {
    let checked = 0;
    for (const b of BACKENDS) {
      for (const options of [undefined, ...b.modes.map((m) => m.options)]) {
        let factory: Awaited<ReturnType<typeof loadBackend>>;
        try {
          factory = await loadBackend(b.name, options === undefined ? undefined : { ...options });
        } catch (error) {
          // A mode this machine cannot give (memfd_secret off): nothing to bound here.
          expect((error as { code?: string }).code, `${b.name} ${JSON.stringify(options)}`).toBe('ERR_UNSUPPORTED_PLATFORM');
          continue;
        }
        expect(factory.name).toBe(b.name);
        expect(claimedFlags(factory.guarantees).filter((f) => !b.claims.includes(f)), `${b.name} ${JSON.stringify(options)}`).toEqual([]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(BACKENDS.length * 2);
  });

  it("the command's targets are the control and every registry mode, in order", () => {
    expect(DEFAULT_TARGETS.map((t) => [t.name, t.module, t.options])).toEqual([
      ['control', '@secure-memory/testkit/control', undefined],
      ...BACKENDS.flatMap((b) => b.modes.map((m) => [m.label, b.module, m.options])),
    ]);
  });

  it("types each backend's options in createSecretFactory (checked by the typecheck target)", async () => {
    expectTypeOf<BackendOptionsFor<'memguard'>>().toEqualTypeOf<MemguardOptions>();
    expectTypeOf<BackendOptionsFor<'protected-memory'>>().toEqualTypeOf<ProtectedMemoryOptions>();
    expectTypeOf<BackendOptionsFor<'sodium'>>().toEqualTypeOf<SodiumOptions>();
    // A misspelled option does not compile (the backends do not refuse unknown keys at run time) ...
    const misspelled = () =>
      // @ts-expect-error misspelled: mdoe
      createSecretFactory({ backend: 'memguard', options: { mdoe: 'locked' } });
    expectTypeOf(misspelled).toBeFunction();
    // ... and a bad value is refused by both.
    // @ts-expect-error a mode memguard does not have
    const bad = createSecretFactory({ backend: 'memguard', options: { mode: 'lockd' } });
    await expect(bad).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });

  it("the README's table of packages lists every backend", () => {
    const readme = readFileSync(README, 'utf8');
    for (const b of BACKENDS) expect(readme, b.module).toContain(`| [\`${b.module}\`](packages/`);
  });
});

describe('"auto" ranks by the registry and loads only what it needs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'auto-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  interface AutoRun {
    chosen: string;
    claims: number;
    imported: string[];
    loadable: Record<string, number>;
  }
  let runs = 0;
  const auto = (config: Record<string, unknown>): AutoRun => {
    const child = spawnSync(process.execPath, [fixture('auto-child.mjs'), JSON.stringify({ log: join(dir, `log-${runs++}`), ...config })], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    return JSON.parse(child.stdout) as AutoRun;
  };
  const ranked = [...BACKENDS].sort((a, b) => b.claims.length - a.claims.length);
  const bound = (name: string): number => BACKENDS.find((b) => b.name === name)?.claims.length ?? Number.NaN;
  /** The most claims among the backends that load here: what "auto" must reach. */
  const most = (run: AutoRun): number => Math.max(...Object.values(run.loadable));
  /** The rule: in rank order, import the next backend only while the best so far claims fewer flags than it could. */
  const needed = (run: AutoRun): string[] => {
    const out: string[] = [];
    let best = -1;
    for (const b of ranked) {
      if (best >= b.claims.length) break;
      out.push(b.name);
      best = Math.max(best, run.loadable[b.name] ?? -1);
    }
    return out;
  };

  it('imports the top-ranked backend alone when it works here, and keeps it', () => {
    const run = auto({});
    const top = ranked[0]?.name as string;
    // The top-ranked backend works on this machine (the suite builds every backend) and claims more
    // than any other could: nothing else is imported.
    expect(run.loadable[top]).toBeGreaterThan(bound(ranked[1]?.name as string));
    expect(run.imported).toEqual([top]);
    expect(run.imported).toEqual(needed(run));
    expect(run.chosen).toBe(top);
    expect(run.claims).toBe(most(run));
  });

  it('goes on to the next when the winner is not installed, and stops once nothing later can claim more', () => {
    const top = ranked[0]?.name as string;
    const run = auto({ block: top });
    expect(run.loadable[top]).toBeUndefined();
    expect(run.imported.slice(0, 2)).toEqual([top, ranked[1]?.name]);
    expect(run.imported).toEqual(needed(run));
    expect(run.claims).toBe(most(run));
  });

  it('goes on to the next when the winner loads but fails its probe', () => {
    const top = ranked[0]?.name as string;
    const run = auto({ replace: { name: top, url: pathToFileURL(fixture('probe-fails-backend.mjs')).href } });
    expect(run.loadable[top]).toBeUndefined();
    expect(run.chosen).not.toBe('probe-fails');
    expect(run.imported.slice(0, 2)).toEqual([top, ranked[1]?.name]);
    expect(run.imported).toEqual(needed(run));
    expect(run.claims).toBe(most(run));
  });
});
