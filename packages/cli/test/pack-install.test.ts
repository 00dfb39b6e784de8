// Packs every package, installs the tarballs into an empty directory outside the workspace as a
// new user would (npm 11: dependencies' install scripts do not run, so memguard must load its
// prebuild), and runs the examples against each backend from there.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = ['core', 'protected-memory', 'sodium-backend', 'memguard', 'testkit', 'cli'];
const BACKENDS = ['protected-memory', 'sodium', 'memguard'];

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...env } });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal}):\n${result.stderr.slice(-2000)}`);
  }
  return result;
}

let dir: string;
let app: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'secure-memory-pack-'));
  app = join(dir, 'app');
  const tarballs = join(dir, 'tarballs');
  mkdirSync(tarballs);
  run('npm', ['run', 'prebuildify'], join(ROOT, 'packages/memguard'));
  for (const pkg of PACKAGES) run('npm', ['pack', '--silent', '--pack-destination', tarballs], join(ROOT, 'packages', pkg));
  cpSync(join(ROOT, 'examples'), app, { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'new-user', private: true, type: 'module' }));
  const files = readdirSync(tarballs).map((f) => join(tarballs, f));
  expect(files).toHaveLength(PACKAGES.length);
  run('npm', ['install', '--no-audit', '--no-fund', ...files], app);
}, 900_000);

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('installed from tarballs outside the workspace', () => {
  it('memguard loads its prebuild: nothing was compiled', () => {
    const installed = join(app, 'node_modules/@secure-memory/memguard');
    expect(existsSync(join(installed, 'prebuilds'))).toBe(true);
    expect(existsSync(join(installed, 'build'))).toBe(false);
    const loaded = run(process.execPath, ['-e', "require('node-gyp-build').resolve(process.argv[1]) && console.log(require('node-gyp-build').resolve(process.argv[1]))", installed], app);
    expect(loaded.stdout).toContain(`${join('prebuilds', `${process.platform}-${process.arch}`)}`);
  });

  it.each(BACKENDS)('the envelope-encryption example runs on %s', (backend) => {
    const result = run(process.execPath, ['envelope-encryption.mjs'], app, { SECURE_MEMORY_BACKEND: backend });
    expect(result.stdout).toMatch(new RegExp(`envelope encryption ok with ${backend}`));
  });

  it.each(BACKENDS)('SECURE_MEMORY_BACKEND=%s swaps the backend without code changes', (backend) => {
    const result = run(process.execPath, ['swap-backend.mjs'], app, { SECURE_MEMORY_BACKEND: backend });
    expect(JSON.parse(result.stdout)).toMatchObject({ backend, length: 32, shown: `Secret(${backend}, 32 bytes)` });
  });

  it('the testkit proves a third-party backend', () => {
    const result = run(process.execPath, ['third-party-backend/prove.mjs'], app);
    expect(result.stdout).toMatch(/^wipesOnClose +verified/m);
    expect(result.stdout).toMatch(/wiping-heap: ok/);
  });

  it('the secure-memory command runs from the install', () => {
    const result = run('npx', ['--no-install', 'secure-memory', 'doctor', '--json'], app);
    // A boolean, not null: the installed protected-memory package was found and probed the kernel.
    expect(typeof JSON.parse(result.stdout).memfdSecret).toBe('boolean');
  });
});
