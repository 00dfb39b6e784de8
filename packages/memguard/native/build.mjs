#!/usr/bin/env node
// Builds the addon with node-gyp, against the headers installed with the node that runs this
// script (<prefix>/include/node) when they are there, so that node-gyp never downloads headers.
//
//   node native/build.mjs               configure if needed, then compile (make is incremental)
//   node native/build.mjs --install     the package's `install` script: nothing to do when a binary
//                                       that fits this platform already loads (a prebuild in
//                                       prebuilds/, or an earlier build); else compile as above
//   node native/build.mjs --rebuild     clean, configure and compile
//   node native/build.mjs --prebuildify [ARCH...]
//                                       build prebuilds/linux-<arch>/ with prebuildify (N-API,
//                                       stripped, tagged with the libc) for each ARCH (default: this
//                                       machine's); arm64 on x64 with Debian's cross compiler
//                                       (g++-aarch64-linux-gnu): run before publishing
//   node native/build.mjs --check-prebuilds ARCH...
//                                       fail unless a prebuild for each ARCH is there (release)
//
// When compiling fails but a prebuild for this platform loads, it warns and succeeds. At install
// (`--install`), when neither works, it warns and still succeeds: the install of an application
// never fails for want of a compiler; the backend then reports ERR_BACKEND_UNAVAILABLE with the
// reason when it is used. A build (`--build`, `--rebuild`) fails and says what to do.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);
const mode = process.argv[2] ?? '--build';
const prefix = dirname(dirname(process.execPath));

/** The native binary node-gyp-build would load here (a build or a prebuild), or undefined. */
function loadable() {
  try {
    const load = require('node-gyp-build');
    const path = load.resolve(root);
    require(path);
    return path;
  } catch {
    return undefined;
  }
}

/**
 * The path of node-gyp's script: npm's own (npm sets npm_config_node_gyp in scripts), a local one,
 * or the one bundled with the npm installed next to this node; undefined to use PATH's `node-gyp`.
 */
function nodeGypScript() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const bundled = join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    return existsSync(bundled) ? bundled : undefined;
  }
}

/** The environment for node-gyp: npm_config_nodedir set to this node's prefix when its headers are installed there. */
function gypEnv() {
  if (process.env.npm_config_nodedir) return process.env;
  const local = existsSync(join(prefix, 'include', 'node', 'node_api.h'));
  return local ? { ...process.env, npm_config_nodedir: prefix } : process.env;
}

function run(command, args, env = gypEnv()) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) {
    process.stderr.write(`@secure-memory/memguard: cannot run ${command}: ${result.error.message}\n`);
    return false;
  }
  return result.status === 0;
}

function gyp(...args) {
  const script = nodeGypScript();
  return script === undefined ? run('node-gyp', args) : run(process.execPath, [script, ...args]);
}

function compile() {
  if (mode === '--rebuild') return gyp('rebuild');
  if (!existsSync(join(root, 'build', 'config.gypi')) && !gyp('configure')) return false;
  return gyp('build');
}

/** The cross compilers for a target architecture, by the GNU triplet Debian's packages install. */
const CROSS = { arm64: 'aarch64-linux-gnu', x64: 'x86_64-linux-gnu' };

/** The prebuild prebuildify writes for `arch` (glibc). */
const prebuildPath = (arch) => join(root, 'prebuilds', `linux-${arch}`, '@secure-memory+memguard.glibc.node');

if (mode === '--prebuildify') {
  const arches = process.argv.length > 3 ? process.argv.slice(3) : [process.arch];
  const script = nodeGypScript();
  const hadBuild = existsSync(join(root, 'build', 'config.gypi'));
  for (const arch of arches) {
    const env = { ...gypEnv(), ...(script === undefined ? {} : { PREBUILD_NODE_GYP: script }) };
    const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc', `--arch=${arch}`];
    if (arch !== process.arch) {
      const triplet = CROSS[arch];
      if (triplet === undefined) {
        process.stderr.write(`@secure-memory/memguard: no cross compiler known for ${arch}\n`);
        process.exit(1);
      }
      Object.assign(env, { CC: `${triplet}-gcc`, CXX: `${triplet}-g++`, LINK: `${triplet}-g++`, AR: `${triplet}-ar` });
      args.push(`--strip-bin=${triplet}-strip`);
    }
    // A cross build must not reuse this machine's objects, nor leave its own behind.
    rmSync(join(root, 'build'), { recursive: true, force: true });
    const ok = run(process.execPath, args, env);
    rmSync(join(root, 'build'), { recursive: true, force: true });
    if (!ok || !existsSync(prebuildPath(arch))) {
      process.stderr.write(`@secure-memory/memguard: the ${arch} prebuild failed\n`);
      process.exit(1);
    }
    process.stderr.write(`@secure-memory/memguard: built ${prebuildPath(arch)}\n`);
  }
  // Leave this machine's build as it was (the package's build target and its tests use it).
  process.exit(!hadBuild || compile() ? 0 : 1);
}

if (mode === '--check-prebuilds') {
  const missing = process.argv.slice(3).filter((arch) => !existsSync(prebuildPath(arch)));
  if (missing.length > 0) {
    process.stderr.write(`@secure-memory/memguard: no prebuild for ${missing.join(', ')}: run \`node native/build.mjs --prebuildify ${process.argv.slice(3).join(' ')}\` before publishing\n`);
    process.exit(1);
  }
  process.exit(0);
}

if (mode === '--install' && loadable() !== undefined) process.exit(0);

if (compile()) process.exit(0);

const prebuild = loadable();
if (prebuild !== undefined) {
  process.stderr.write(`@secure-memory/memguard: compiling the addon failed; using the prebuilt ${prebuild}\n`);
  process.exit(0);
}
process.stderr.write(
  `@secure-memory/memguard: ${mode === '--install' ? 'warning: ' : ''}the native addon could not be built and no prebuild fits this platform.\n` +
    'Install a C++ toolchain (build-essential / Xcode command line tools) and Python 3, then run\n' +
    '`npm rebuild @secure-memory/memguard`; or use @secure-memory/protected-memory, which needs no compiler.\n' +
    (mode === '--install' ? 'The install goes on: the memguard backend reports ERR_BACKEND_UNAVAILABLE until the addon is built.\n' : ''),
);
process.exit(mode === '--install' ? 0 : 1);
