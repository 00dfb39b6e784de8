/**
 * Process-level functions, after memguard's: purge every buffer, exit or panic after purging, catch
 * signals, and (only when asked) disable core dumps. Nothing here runs at import.
 * @module
 */
import { writeSync } from 'node:fs';
import { constants } from 'node:os';
import { inspect } from 'node:util';
import {
  ErrorCode,
  SecureMemoryError,
  SecureMemoryTypeError,
} from '@secure-memory/core';
import {
  assertFunction,
  describeType,
} from '@secure-memory/core/backend';
import { BACKEND, assertInRange, integrityError, systemError } from './errors.js';
import { closeAllSecrets } from './open-secrets.js';
import { purgeKey } from './key.js';
import { addon } from './native.js';
import { type PurgeOutcome, purgeRegions } from './region.js';

/** Destroys every region, drains the pool, replaces the process key, and closes every secret. */
function purgeAll(): PurgeOutcome {
  let outcome: PurgeOutcome;
  try {
    outcome = purgeRegions();
  } finally {
    purgeKey();
  }
  // Their memory is gone: closing them makes `closed` true. A damaged canary was reported above.
  for (const error of closeAllSecrets()) {
    if ((error as { code?: unknown }).code !== ErrorCode.INTEGRITY) outcome.errors.push(error);
  }
  return outcome;
}

function outcomeError(outcome: PurgeOutcome): SecureMemoryError | undefined {
  if (outcome.damaged > 0) return integrityError(outcome.damaged);
  const first = outcome.errors[0];
  if (first === undefined) return undefined;
  return first instanceof SecureMemoryError
    ? first
    : new SecureMemoryError(ErrorCode.PROTECTION_FAILED, 'A buffer could not be wiped', { backend: BACKEND, cause: first });
}

/**
 * Destroys every live LockedBuffer and every secret of every memguard factory of the calling thread
 * (each worker has its own instance of this package; a worker's buffers are wiped and released when
 * it ends, by the addon's environment cleanup hook):
 * detaches their views, checks their canaries, wipes, unlocks and unmaps them; unmaps the pool; and
 * wipes the process key (memguard's Purge): the next Enclave gets a new key, and every Enclave,
 * Stream chunk and enclave-mode secret sealed before can no longer be opened. Such an Enclave's
 * `open()` throws `ERR_INTEGRITY`; secrets purged this way (either mode) throw `ERR_SECRET_CLOSED`
 * on their next access.
 * @throws {SecureMemoryError} `ERR_INTEGRITY` when a canary was damaged, after every buffer was
 * destroyed; `ERR_PROTECTION_FAILED` when a buffer could not be made writable to be wiped (the
 * others are destroyed all the same).
 * @example
 * ```ts
 * process.on('uncaughtException', (err) => { purge(); throw err; });
 * ```
 */
export function purge(): void {
  const error = outcomeError(purgeAll());
  if (error !== undefined) throw error;
}

/** Purges, and says on stderr what went wrong, without throwing: for paths that are about to exit. */
function purgeQuietly(): void {
  const error = outcomeError(purgeAll());
  if (error === undefined) return;
  try {
    writeSync(2, `@secure-memory/memguard: purge: ${error.code}: ${error.message}\n`);
  } catch {
    // stderr closed
  }
}

function assertExitCode(code: unknown): asserts code is number {
  assertInRange(code, 'code', 0, 255);
}

/**
 * Purges every buffer, then exits with `code` (memguard's SafeExit). A damaged canary is reported on
 * stderr; the exit code stays `code`.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `code` is not a number (nothing is purged then).
 * @throws {RangeError} `ERR_OUT_OF_RANGE` unless `code` is a whole number from 0 to 255.
 */
export function safeExit(code = 0): never {
  assertExitCode(code);
  purgeQuietly();
  process.exit(code);
}

/**
 * Purges every buffer, prints `error` to stderr and exits with code 1, as an uncaught exception
 * would (memguard's SafePanic).
 */
export function safePanic(error: unknown): never {
  purgeQuietly();
  try {
    writeSync(2, `${inspect(error)}\n`);
  } catch {
    // stderr closed
  }
  process.exit(1);
}

/** A signal handler: gets the name of the signal caught. Its result is not awaited. */
export type SignalHandler = (signal: NodeJS.Signals) => void;

/** Signals that cannot be caught, or are not about ending the process. */
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP']);

/**
 * Synchronous fault signals: the kernel raises them on the faulting instruction itself. Node's
 * listener only queues the signal for the event loop, so the instruction runs again, faults again,
 * and the process spins at 100% CPU forever: neither the handler nor the purge would ever run.
 * They are refused; the default action (the process dies, with a core dump that holds no buffer:
 * every buffer is MADV_DONTDUMP) is what ends such a process.
 */
const FAULT_SIGNALS = new Set(['SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL']);

let installed: { signals: NodeJS.Signals[]; listener: (signal: NodeJS.Signals) => void } | undefined;

function assertSignals(signals: unknown[]): asserts signals is NodeJS.Signals[] {
  for (const signal of signals) {
    if (typeof signal !== 'string') {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `A signal must be a string such as 'SIGTERM'. Received ${describeType(signal)}`);
    }
    if (!Object.hasOwn(constants.signals, signal) || UNCATCHABLE.has(signal)) {
      throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, 'A signal must be the name of a signal that can be caught, such as SIGINT or SIGTERM');
    }
    if (FAULT_SIGNALS.has(signal)) {
      throw new SecureMemoryTypeError(
        ErrorCode.INVALID_ARG_VALUE,
        `${signal} is a synchronous fault signal: a JavaScript listener would never run (the faulting instruction repeats forever), so catchSignal refuses it`,
      );
    }
  }
}

/**
 * On any of `signals` (default: SIGINT and SIGTERM), runs `handler(signal)`, purges every buffer,
 * and exits with the conventional code 128 + the signal number (130 for SIGINT, 143 for SIGTERM),
 * as memguard's CatchSignal. A handler that throws does not stop the purge. A later call replaces
 * the earlier one.
 * @throws {TypeError} `ERR_INVALID_ARG_TYPE` when `handler` is not a function or a signal not a
 * string; `ERR_INVALID_ARG_VALUE` for an unknown signal, SIGKILL/SIGSTOP, or a synchronous fault
 * signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL), which a JavaScript listener can never handle.
 * @example
 * ```ts
 * catchSignal((signal) => log.info(`stopping on ${signal}`), 'SIGINT', 'SIGTERM', 'SIGHUP');
 * ```
 */
export function catchSignal(handler: SignalHandler, ...signals: NodeJS.Signals[]): void {
  assertFunction(handler, 'handler');
  const list: unknown[] = signals.length === 0 ? ['SIGINT', 'SIGTERM'] : signals;
  assertSignals(list);
  const listener = (signal: NodeJS.Signals): void => {
    try {
      handler(signal);
    } catch (error) {
      try {
        writeSync(2, `@secure-memory/memguard: the signal handler threw: ${inspect(error)}\n`);
      } catch {
        // stderr closed
      }
    }
    purgeQuietly();
    process.exit(128 + (constants.signals[signal] as number));
  };
  if (installed !== undefined) {
    for (const signal of installed.signals) process.removeListener(signal, installed.listener);
  }
  for (const signal of new Set(list)) process.on(signal, listener);
  installed = { signals: [...new Set(list)], listener };
}

/**
 * On SIGINT (Ctrl-C), purges every buffer and exits with code 130 (memguard's CatchInterrupt).
 * Replaces an earlier {@link catchSignal}.
 */
export function catchInterrupt(): void {
  catchSignal(() => {}, 'SIGINT');
}

/**
 * Sets RLIMIT_CORE to 0 (soft and hard): the process writes no core file from now on. memguard does
 * this at import; this package only when you call it. Irreversible without privilege. The buffers
 * themselves are already left out of core dumps (MADV_DONTDUMP); this also covers the JavaScript heap.
 * @throws {SecureMemoryError} `ERR_PROTECTION_FAILED` (with `errno`, `syscall` 'setrlimit') when it fails;
 * `ERR_UNSUPPORTED_PLATFORM` off Linux; `ERR_BACKEND_UNAVAILABLE` without the addon.
 */
export function disableCoreDumps(): void {
  const errno = addon().disableCoreDumps();
  if (errno !== 0) throw systemError(ErrorCode.PROTECTION_FAILED, 'setrlimit', errno);
}
