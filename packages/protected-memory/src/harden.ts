/**
 * Opt-in, process-wide hardening. Importing this package never changes the process; calling
 * {@link hardenProcess} does.
 * @module
 */
import { ErrorCode, SecureMemoryTypeError } from '@secure-memory/core';
import { assertOptions, describeType } from '@secure-memory/core/backend';
import { systemError } from './errors.js';
import { PR_SET_DUMPABLE, RLIMIT_CORE, libc } from './libc.js';

/** What {@link hardenProcess} turns off; each defaults to `false` (turn it off). `true` leaves that setting as it is. */
export interface HardenProcessOptions {
  /** `false` (default): set RLIMIT_CORE to 0, soft and hard, so that no core file is written (irreversible without privilege). */
  coreDumps?: boolean;
  /**
   * `false` (default): `prctl(PR_SET_DUMPABLE, 0)`: no core dump, and processes of the same user can
   * no longer ptrace this one or read its /proc/<pid>/mem. Reset to the system default by `execve`.
   */
  dumpable?: boolean;
}

function flag(options: Record<string, unknown> | undefined, name: keyof HardenProcessOptions): boolean {
  const value = options?.[name];
  if (value === undefined) return false;
  if (typeof value === 'boolean') return value;
  throw new SecureMemoryTypeError(
    ErrorCode.INVALID_ARG_TYPE,
    `The "${name}" option must be a boolean. Received ${describeType(value)}`,
  );
}

/**
 * Hardens the whole process against leaking memory through core dumps and same-user debuggers:
 * RLIMIT_CORE 0 and PR_SET_DUMPABLE 0. The per-secret protections do not need it; it also covers
 * copies that JavaScript leaves in the heap. Linux only.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `options` is not an object or a flag is not a boolean.
 * @throws {SecureMemoryError} `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` when
 * libc cannot be loaded; `ERR_PROTECTION_FAILED` (with `errno`, `syscall`) when setrlimit or prctl fails.
 * @example
 * ```ts
 * import { hardenProcess } from '@secure-memory/protected-memory';
 * hardenProcess(); // same as hardenProcess({ coreDumps: false, dumpable: false })
 * ```
 */
export function hardenProcess(options?: HardenProcessOptions): void {
  const record: unknown = options;
  assertOptions(record, 'options');
  const keepCoreDumps = flag(record, 'coreDumps');
  const keepDumpable = flag(record, 'dumpable');
  const lib = libc();
  if (!keepCoreDumps && lib.setrlimitZero(RLIMIT_CORE) !== 0) {
    throw systemError(ErrorCode.PROTECTION_FAILED, 'setrlimit', lib.errno());
  }
  if (!keepDumpable && lib.prctl(PR_SET_DUMPABLE, 0) !== 0) {
    throw systemError(ErrorCode.PROTECTION_FAILED, 'prctl', lib.errno());
  }
}
