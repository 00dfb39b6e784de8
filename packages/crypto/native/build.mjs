#!/usr/bin/env node
// Builds the addon with node-gyp, against the headers installed with the node that runs this
// script (<prefix>/include/node) when they are there, so that node-gyp never downloads headers.
//
//   node native/build.mjs               configure if needed, then compile (make is incremental)
//   node native/build.mjs --install     the package's `install` script: nothing to do when a binary
//                                       that fits this platform already loads (a prebuild in
//                                       prebuilds/, or an earlier build); else compile as above
//   node native/build.mjs --rebuild     clean, configure and compile
//   node native/build.mjs --prebuildify build prebuilds/<platform>-<arch>/ with prebuildify (N-API,
//                                       stripped, tagged with the libc): run before publishing
//
// When compiling fails but a prebuild for this platform loads, it warns and succeeds, so that a
// machine without a compiler can still use the package. Otherwise it fails and says what to do.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
    process.stderr.write(`@secure-memory/crypto: cannot run ${command}: ${result.error.message}\n`);
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

if (mode === '--prebuildify') {
  const script = nodeGypScript();
  const env = { ...gypEnv(), ...(script === undefined ? {} : { PREBUILD_NODE_GYP: script }) };
  const ok = run(process.execPath, [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc'], env);
  process.exit(ok ? 0 : 1);
}

if (mode === '--install' && loadable() !== undefined) process.exit(0);

if (compile()) process.exit(0);

const prebuild = loadable();
if (prebuild !== undefined) {
  process.stderr.write(`@secure-memory/crypto: compiling the addon failed; using the prebuilt ${prebuild}\n`);
  process.exit(0);
}
process.stderr.write(
  '@secure-memory/crypto: the native addon could not be built and no prebuild fits this platform.\n' +
    'Install a C++ toolchain (build-essential), Python 3 and the libsodium static library (libsodium-dev), then run\n' +
    '`npm rebuild @secure-memory/crypto`.\n',
);
process.exit(1);
