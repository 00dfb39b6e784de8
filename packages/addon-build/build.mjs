// Builds a package's native addon with node-gyp, against the headers installed with the node that
// runs it (<prefix>/include/node) when they are there, so that node-gyp never downloads headers.
//
// One script for every addon of the repository (memguard's, crypto's): each package's
// native/build.mjs is two lines that call `build(<its root>)`; the package's name comes from its
// package.json, and node-gyp-build, node-gyp and prebuildify are resolved from the package, whose
// dependencies they are. It ships as its own package because npm packs no symlink and each addon's
// `install` script needs it when that package is installed alone from its tarball.
//
//   node native/build.mjs               configure if needed, then compile (make is incremental); then
//                                       the development addons of native/extra/binding.gyp when the
//                                       package has them (memguard's test build with the fault seam,
//                                       and the benchmark floors)
//   node native/build.mjs --install     the package's `install` script: nothing to do when a binary
//                                       that fits this platform already loads (a prebuild in
//                                       prebuilds/, or an earlier build); else compile as above
//   node native/build.mjs --rebuild     clean, configure and compile (the development addons too)
//   node native/build.mjs --prebuildify [ARCH...]
//                                       build prebuilds/linux-<arch>/ with prebuildify (N-API,
//                                       stripped, tagged with the libc) for each ARCH (default: this
//                                       machine's); arm64 on x64 with Debian's cross compiler
//                                       (g++-aarch64-linux-gnu): run before publishing
//   node native/build.mjs --check-prebuilds ARCH...
//                                       fail unless a prebuild for each ARCH is there (release)
// --install and --prebuildify never build native/extra: what users install has no test seam.
//
// When compiling fails but a prebuild for this platform loads, it warns and succeeds. At install
// (`--install`), when neither works, it warns and still succeeds: the install of an application
// never fails for want of a compiler; the backend then reports ERR_BACKEND_UNAVAILABLE with the
// reason when it is used. A build (`--build`, `--rebuild`) fails and says what to do.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Builds the addon of the package at `packageRoot` (a directory path or file: URL) as the mode in
 * `args[0]` says (see the header); ends the process with the exit status.
 * @param {string | URL} packageRoot
 * @param {readonly string[]} [args]
 * @returns {never}
 */
export function build(packageRoot, args = process.argv.slice(2)) {
  const root = typeof packageRoot === 'string' ? packageRoot : fileURLToPath(packageRoot);
  /** The package this script builds. */
  const NAME = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).name;
  /** Resolves from the package: node-gyp-build and prebuildify are its dependencies. */
  const require = createRequire(join(root, 'package.json'));
  const mode = args[0] ?? '--build';
  const prefix = dirname(dirname(process.execPath));
  /** The development addons (fault seam, floors) are built by development builds only. */
  const extra = join(root, 'native', 'extra');

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

  function run(command, args, env = gypEnv(), cwd = root) {
    const result = spawnSync(command, args, { cwd, stdio: 'inherit', env });
    if (result.error) {
      process.stderr.write(`${NAME}: cannot run ${command}: ${result.error.message}\n`);
      return false;
    }
    return result.status === 0;
  }

  function gyp(cwd, ...args) {
    const script = nodeGypScript();
    return script === undefined ? run('node-gyp', args, gypEnv(), cwd) : run(process.execPath, [script, ...args], gypEnv(), cwd);
  }

  /** The release addon (binding.gyp), or, with `dir` = native/extra, the development addons. */
  function compile(dir = root) {
    if (mode === '--rebuild') return gyp(dir, 'rebuild');
    if (!existsSync(join(dir, 'build', 'config.gypi')) && !gyp(dir, 'configure')) return false;
    return gyp(dir, 'build');
  }

  /** The cross compilers for a target architecture, by the GNU triplet Debian's packages install. */
  const CROSS = { arm64: 'aarch64-linux-gnu', x64: 'x86_64-linux-gnu' };

  /** The prebuild prebuildify writes for `arch` (glibc). */
  const prebuildPath = (arch) => join(root, 'prebuilds', `linux-${arch}`, `${NAME.replace('/', '+')}.glibc.node`);

  if (mode === '--prebuildify') {
    const arches = args.length > 1 ? args.slice(1) : [process.arch];
    const script = nodeGypScript();
    const hadBuild = existsSync(join(root, 'build', 'config.gypi'));
    for (const arch of arches) {
      const env = { ...gypEnv(), ...(script === undefined ? {} : { PREBUILD_NODE_GYP: script }) };
      const args = [require.resolve('prebuildify/bin.js'), '--napi', '--strip', '--tag-libc', `--arch=${arch}`];
      if (arch !== process.arch) {
        const triplet = CROSS[arch];
        if (triplet === undefined) {
          process.stderr.write(`${NAME}: no cross compiler known for ${arch}\n`);
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
        process.stderr.write(`${NAME}: the ${arch} prebuild failed\n`);
        process.exit(1);
      }
      process.stderr.write(`${NAME}: built ${prebuildPath(arch)}\n`);
    }
    // Leave this machine's build as it was (the package's build target and its tests use it).
    process.exit(!hadBuild || compile() ? 0 : 1);
  }

  if (mode === '--check-prebuilds') {
    const missing = args.slice(1).filter((arch) => !existsSync(prebuildPath(arch)));
    if (missing.length > 0) {
      process.stderr.write(`${NAME}: no prebuild for ${missing.join(', ')}: run \`node native/build.mjs --prebuildify ${args.slice(1).join(' ')}\` before publishing\n`);
      process.exit(1);
    }
    process.exit(0);
  }

  if (mode === '--install' && loadable() !== undefined) process.exit(0);

  if (compile()) {
    // native/extra is not published: an installed package has only the release addon.
    if (mode === '--install' || !existsSync(extra) || compile(extra)) process.exit(0);
    process.stderr.write(`${NAME}: the development addons (native/extra) could not be built\n`);
    process.exit(1);
  }

  const prebuild = loadable();
  if (prebuild !== undefined) {
    process.stderr.write(`${NAME}: compiling the addon failed; using the prebuilt ${prebuild}\n`);
    process.exit(0);
  }
  process.stderr.write(
    `${NAME}: ${mode === '--install' ? 'warning: ' : ''}the native addon could not be built and no prebuild fits this platform.\n` +
      'Install a C++ toolchain (build-essential / Xcode command line tools) and Python 3, then run\n' +
      `\`npm rebuild ${NAME}\`.\n` +
      (mode === '--install' ? `The install goes on: ${NAME} reports ERR_BACKEND_UNAVAILABLE until the addon is built.\n` : ''),
  );
  process.exit(mode === '--install' ? 0 : 1);
}
