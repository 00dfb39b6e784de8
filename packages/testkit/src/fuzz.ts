/**
 * Model-based fuzzing of the contract with fast-check's commands API: random sequences of `new`,
 * `createRandom`, `fromFd`, `withBytes` (plain, nested, throwing, closing, async), `withBytesAsync`
 * accesses held pending across later commands and released in any order (some rejecting),
 * `reader().read`, `equals` and `close` run against a simple in-memory model (the bytes of each
 * secret, its closed flag, its pending accesses). After every command every secret's bytes,
 * `closed` flag and size are checked against the model, and `stats()` against the model's counts
 * of live and allocated secrets. Views are touched only inside their actions.
 *
 * This file holds the options, the arbitraries and the runner; the model is in `fuzz-model.ts`,
 * the commands in `fuzz-lifecycle.ts` (making and ending secrets) and `fuzz-access.ts` (using them).
 * @module
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fc from 'fast-check';
import { assertOptions } from '@secure-memory/core/backend';
import { EqualsCommand, type EqualsKind, ReadCommand, SettleAsyncCommand, StartAsyncCommand, WithBytesCommand, type WithBytesKind } from './fuzz-access.js';
import { type CloseHow, CloseCommand, type CloseTarget, type ClosedUse, CreateRandomCommand, FromFdCommand, NewCommand, UseClosedCommand } from './fuzz-lifecycle.js';
import type { FuzzCommand, FuzzModel, FuzzReal, Tally } from './fuzz-model.js';
import { loadTarget } from './load.js';

/** The seed `describeConformance` fuzzes every backend with. */
export const CONFORMANCE_FUZZ_SEED = 424242;
/** The runs of the fixed-seed fuzz in `describeConformance`. */
export const CONFORMANCE_FUZZ_RUNS = 300;

/** The longest command sequence of one run. */
const DEFAULT_MAX_COMMANDS = 60;

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  /** A module specifier of a backend (what `loadBackend` takes). */
  module: string;
  /** Passed to the module's `createFactory(options)`; each run builds a fresh factory. */
  options?: Record<string, unknown>;
  /** The fast-check seed; random when omitted (it is returned either way). */
  seed?: number;
  /** Command sequences to run (default 100). */
  numRuns?: number;
  /** The longest sequence (default 60). */
  maxCommands?: number;
  /** With `seed`: replay the failing run at this fast-check path (and shrink no further). */
  path?: string;
  /** With `path`: which commands of the replayed sequences ran (from the failure's `replayPath`). */
  replayPath?: string;
  /** Called after each run that passed: `(runsDone, numRuns)`. */
  progress?: (runsDone: number, numRuns: number) => void;
}

/** A failure, with what is needed to replay it. */
export interface FuzzFailure {
  seed: number;
  /** fast-check's path to the shrunk counterexample (`{ seed, path }` replays it). */
  path: string;
  /** Which commands ran, for replaying a shrunk path (`replayPath` option). */
  replayPath: string | null;
  /** The shrunk command sequence, one command a line. */
  counterexample: string;
  /** The error the shrunk sequence ended with. */
  error: string;
  /** A readable report: seed, path, the sequence and the error. */
  text: string;
}

/** The result of {@link runFuzz}. */
export interface FuzzResult {
  ok: boolean;
  seed: number;
  /** Runs done (up to and including the first failing one). */
  numRuns: number;
  /** Commands run before the first failure (shrinking not counted). */
  commandsRun: number;
  /** Calls of the contract's methods those commands and the checks after them made. */
  operations: number;
  /** Commands run, by name. */
  commandCounts: Record<string, number>;
  failure?: FuzzFailure;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const slotArb = fc.nat({ max: 63 });
const sizeArb = fc.oneof(
  { arbitrary: fc.integer({ min: 1, max: 64 }), weight: 6 },
  { arbitrary: fc.constantFrom(4095, 4096, 4097), weight: 1 },
  { arbitrary: fc.integer({ min: 65, max: 12_288 }), weight: 2 },
);
const fillArb = fc.nat({ max: 0xffff });

function commandArbitraries(): fc.Arbitrary<FuzzCommand>[] {
  return [
    fc
      .tuple(sizeArb, fillArb, fc.nat({ max: 16 }), fc.option(slotArb, { freq: 4 }))
      .map(([size, fill, offset, twinOf]) => new NewCommand(size, fill, offset, twinOf)),
    sizeArb.map((size) => new CreateRandomCommand(size)),
    fc
      .tuple(fc.integer({ min: 2, max: 5000 }), fillArb, fc.constantFrom(false, false, false, true))
      .map(([size, fill, short]) => new FromFdCommand(size, fill, short)),
    fc
      .tuple(slotArb, fc.constantFrom<WithBytesKind>('plain', 'plain', 'nested', 'nested', 'throw', 'close-inside', 'async-action'), slotArb)
      .map(([slot, kind, other]) => new WithBytesCommand(slot, kind, other)),
    fc.tuple(slotArb, fc.boolean(), fc.nat({ max: 5 })).map(([slot, rejects, mode]) => new StartAsyncCommand(slot, rejects, mode === 0)),
    fc.tuple(slotArb, fc.boolean()).map(([slot, rejects]) => new StartAsyncCommand(slot, rejects && slot % 3 === 0, false)),
    slotArb.map((which) => new SettleAsyncCommand(which)),
    slotArb.map((which) => new SettleAsyncCommand(which)),
    fc
      .tuple(slotArb, fc.array(fc.integer({ min: 1, max: 4200 }), { minLength: 1, maxLength: 4 }), fc.boolean(), fc.boolean())
      .map(([slot, chunks, zeroFirst, closeMidway]) => new ReadCommand(slot, chunks, zeroFirst, closeMidway && slot % 4 === 0)),
    fc
      .tuple(slotArb, fc.constantFrom<EqualsKind>('bytes', 'offset', 'mutated', 'shorter', 'longer', 'secret', 'secret', 'self'), slotArb, fc.nat({ max: 1 << 16 }))
      .map(([slot, kind, other, position]) => new EqualsCommand(slot, kind, other, position)),
    fc
      .tuple(slotArb, fc.constantFrom<CloseTarget>('any', 'open', 'open', 'pending', 'pending'), fc.constantFrom<CloseHow>('close', 'close', 'dispose', 'twice'))
      .map(([slot, target, how]) => new CloseCommand(slot, target, how)),
    fc
      .tuple(slotArb, fc.constantFrom<ClosedUse>('withBytes', 'withBytesAsync', 'reader', 'equals', 'equals-by-other', 'close-again'))
      .map(([slot, use]) => new UseClosedCommand(slot, use)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Running

function formatSequence(counterexample: unknown): { lines: string; replayPath: string | null } {
  const text = String(counterexample);
  const match = /\s*\/\*replayPath="([^"]*)"\*\/\s*$/.exec(text);
  const sequence = match === null ? text : text.slice(0, match.index);
  const commands = sequence === '' ? [] : sequence.split(/,(?=[a-zA-Z]+\()/);
  return { lines: commands.map((c, i) => `  ${String(i + 1).padStart(2)}. ${c}`).join('\n'), replayPath: match?.[1] ?? null };
}

/**
 * Fuzzes a backend against the model of the contract: `numRuns` random command sequences, each on
 * a fresh factory, each ending with every access released and every secret closed and freed. A
 * failing sequence is shrunk, and the result says how to replay it (`seed`, `path`, `replayPath`).
 * Never touches a view outside its action, so a backend that faults on such a touch is safe to fuzz.
 * @throws {TypeError} (rejects) `ERR_INVALID_ARG_TYPE` for options of the wrong type.
 * @throws {RangeError} (rejects) `ERR_INVALID_ARG_VALUE` for `numRuns` or `maxCommands` below 1.
 * @throws {SecureMemoryError} (rejects) `ERR_BACKEND_UNAVAILABLE` when the backend cannot be loaded.
 * @example
 * ```ts
 * const result = await runFuzz({ module: '@secure-memory/sodium', seed: 424242, numRuns: 300 });
 * if (!result.ok) console.error(result.failure?.text);
 * ```
 */
export async function runFuzz(config: FuzzOptions): Promise<FuzzResult> {
  assertOptions(config, 'config');
  if (typeof config.module !== 'string' || config.module === '') {
    throw Object.assign(new TypeError('The "module" option must be a non-empty module specifier'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  assertOptions(config.options, 'options');
  for (const key of ['seed', 'numRuns', 'maxCommands'] as const) {
    const value = config[key];
    if (value !== undefined && !Number.isSafeInteger(value)) {
      throw Object.assign(new TypeError(`The "${key}" option must be an integer`), { code: 'ERR_INVALID_ARG_TYPE' });
    }
    if (key !== 'seed' && value !== undefined && value < 1) {
      throw Object.assign(new RangeError(`The "${key}" option must be at least 1`), { code: 'ERR_INVALID_ARG_VALUE' });
    }
  }
  for (const key of ['path', 'replayPath'] as const) {
    if (config[key] !== undefined && typeof config[key] !== 'string') {
      throw Object.assign(new TypeError(`The "${key}" option must be a string`), { code: 'ERR_INVALID_ARG_TYPE' });
    }
  }
  if (config.progress !== undefined && typeof config.progress !== 'function') {
    throw Object.assign(new TypeError('The "progress" option must be a function'), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  const seed = config.seed ?? (Date.now() ^ (Math.random() * 0x100000000)) | 0;
  const numRuns = config.numRuns ?? 100;
  // Fails early, outside fast-check, when the backend does not load.
  await loadTarget(config.module, config.options);

  const dir = mkdtempSync(join(tmpdir(), 'secure-memory-fuzz-'));
  const tally: Tally = { operations: 0, commands: 0, counting: true, byName: {} };
  let runsDone = 0;
  let unhandled = 0;
  const onUnhandled = (): void => {
    unhandled += 1;
  };
  process.on('unhandledRejection', onUnhandled);
  /** One run: a fresh factory, the commands, then everything released, closed and checked. */
  const runOne = async (commands: Iterable<FuzzCommand>): Promise<void> => {
    const factory = await loadTarget(config.module, config.options);
    const lockedAtStart = factory.stats().lockedBytes;
    const model: FuzzModel = { secrets: [], pending: [], allocated: 0, hasFromFd: typeof factory.fromFd === 'function' };
    const real: FuzzReal = { factory, secrets: [], pending: [], dir, tally };
    const unhandledBefore = unhandled;
    let closeError: unknown;
    try {
      await fc.asyncModelRun(() => ({ model, real }), commands);
    } finally {
      // Release the pending accesses and close everything, also after a failure, so that a failed
      // run leaves no region open for the next one. The accesses settle after the closes: they are
      // the last ones, so they free their secrets.
      const settling = real.pending.splice(0).map((p) => {
        p.release();
        return p.settled;
      });
      for (const secret of real.secrets) {
        try {
          secret.close();
        } catch (error) {
          closeError ??= error;
        }
      }
      await Promise.all(settling);
    }
    if (closeError !== undefined) throw closeError;
    const stats = factory.stats();
    assert.equal(stats.inUse, 0, 'secrets still in use after every access settled and every secret was closed');
    assert.equal(stats.lockedBytes, lockedAtStart, 'locked bytes were not given back after every secret was closed');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(unhandled, unhandledBefore, 'an unhandled promise rejection during the run');
  };
  const property = fc.asyncProperty(
    fc.commands(commandArbitraries(), {
      maxCommands: config.maxCommands ?? DEFAULT_MAX_COMMANDS,
      size: 'max',
      ...(config.replayPath === undefined ? {} : { replayPath: config.replayPath }),
    }),
    async (commands) => {
      try {
        await runOne(commands);
      } catch (error) {
        // The first failure ends the counting: the runs that shrink it are not more fuzzing.
        tally.counting = false;
        throw error;
      }
      if (tally.counting) {
        runsDone += 1;
        config.progress?.(runsDone, numRuns);
      }
    },
  );
  let details: fc.RunDetails<[Iterable<FuzzCommand>]>;
  try {
    details = await fc.check(property, {
      seed,
      numRuns,
      ...(config.path === undefined ? {} : { path: config.path, endOnFailure: true }),
    });
  } finally {
    process.off('unhandledRejection', onUnhandled);
    rmSync(dir, { recursive: true, force: true });
  }
  const result: FuzzResult = {
    ok: !details.failed,
    seed,
    numRuns: details.numRuns,
    commandsRun: tally.commands,
    operations: tally.operations,
    commandCounts: { ...tally.byName },
  };
  if (details.failed) {
    const path = details.counterexamplePath ?? '';
    const { lines, replayPath } = details.counterexample === null ? { lines: '', replayPath: null } : formatSequence(details.counterexample[0]);
    const error =
      details.errorInstance instanceof Error ? `${details.errorInstance.name}: ${details.errorInstance.message}` : String(details.errorInstance ?? (details.interrupted ? 'interrupted' : 'failed'));
    const replay = `{ seed: ${seed}, path: ${JSON.stringify(path)}${replayPath === null ? '' : `, replayPath: ${JSON.stringify(replayPath)}`} }`;
    result.failure = {
      seed,
      path,
      replayPath,
      counterexample: lines,
      error,
      text: [
        `fuzzing ${config.module}${config.options === undefined ? '' : ` ${JSON.stringify(config.options)}`} failed after ${details.numRuns} run(s), shrunk ${details.numShrinks} time(s)`,
        `seed ${seed}, path ${JSON.stringify(path)}: replay with runFuzz(${replay})`,
        'shrunk command sequence:',
        lines,
        `error: ${error}`,
      ].join('\n'),
    };
  }
  return result;
}
