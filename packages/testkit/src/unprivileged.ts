/**
 * Running a command as an unprivileged user, for tests of limits that root is not bound by
 * (root has CAP_IPC_LOCK, so RLIMIT_MEMLOCK does not apply to it).
 * @module
 */

/**
 * The argv prefix that runs a program as `nobody` with one capability kept: CAP_DAC_READ_SEARCH,
 * so that it can still read a workspace that lies under a private (0700) directory. It has no
 * CAP_IPC_LOCK, so RLIMIT_MEMLOCK binds it like any user. Needs root and util-linux's setpriv.
 */
export const UNPRIVILEGED_PREFIX: readonly string[] = Object.freeze([
  'setpriv',
  '--reuid=nobody',
  '--regid=nogroup',
  '--clear-groups',
  '--inh-caps=+dac_read_search',
  '--ambient-caps=+dac_read_search',
]);

/**
 * Prefixes `argv` so that it runs as `nobody`; with `memlock`, under that RLIMIT_MEMLOCK (bytes,
 * soft and hard) set by prlimit.
 * @example
 * ```ts
 * const [cmd, ...args] = unprivileged([process.execPath, 'fixture.mjs'], { memlock: 8 << 20 });
 * spawnSync(cmd, args);
 * ```
 */
export function unprivileged(argv: readonly string[], options: { memlock?: number } = {}): string[] {
  const limit = options.memlock === undefined ? [] : ['prlimit', `--memlock=${options.memlock}:${options.memlock}`, '--'];
  return [...limit, ...UNPRIVILEGED_PREFIX, ...argv];
}
