/**
 * What happens to memory nobody released: a buffer or secret that becomes unreachable is destroyed
 * by a FinalizationRegistry (with `debug`, a warning names the stack where it was made, as Asherah
 * C#'s debugSecrets does), and every live region is purged when the process exits. The exit hook
 * is installed when the first region is made, never at import.
 * @module
 */
import { writeSync } from 'node:fs';
import { type GuardedRegion, purgeRegions } from './region.js';

/** The `type` of the warnings this package emits (`process.on('warning')`). */
export const WARNING_TYPE = 'SecureMemoryWarning';
/** The `code` of the warning for a buffer or secret that was garbage-collected without being destroyed. */
export const UNRELEASED_WARNING = 'MEMGUARD_UNRELEASED';
/** The `code` of the warning for a damaged canary found when the garbage collector released memory. */
export const INTEGRITY_WARNING = 'ERR_INTEGRITY';

interface Held {
  /** The memory to release; none for an enclave-mode secret at rest (only the warning is wanted). */
  region: GuardedRegion | undefined;
  kind: string;
  /** Where it was made, when `debug` was on. */
  stack: string | undefined;
}

function release(held: Held): void {
  let intact = true;
  if (held.region !== undefined) {
    if (!held.region.alive) return;
    try {
      intact = held.region.destroy();
    } catch {
      return; // mprotect failed: the region stays listed, and the exit purge tries again
    }
  }
  if (held.stack !== undefined) {
    process.emitWarning(`A ${held.kind} was garbage-collected without being destroyed; its memory was wiped and released`, {
      type: WARNING_TYPE,
      code: UNRELEASED_WARNING,
      detail: `It was created at:\n${held.stack}`,
    });
  }
  if (!intact) {
    process.emitWarning(`The canary of a garbage-collected ${held.kind} was damaged: a buffer underflow wrote into guarded memory`, {
      type: WARNING_TYPE,
      code: INTEGRITY_WARNING,
    });
  }
}

const registry = new FinalizationRegistry<Held>(release);

/** The stack of the caller's caller, without this package's own frames. */
function creationStack(): string {
  const stack = new Error('created').stack ?? '';
  return stack
    .split('\n')
    .slice(1)
    .filter((line) => !/[/\\](memguard[/\\](src|dist))[/\\]/.test(line))
    .join('\n');
}

/**
 * Destroys `region` when `owner` is garbage-collected; with `debug`, warns where it was made. Without
 * a region (an enclave-mode secret holds no native memory at rest) only the warning is wanted.
 * `unregisterable: false` registers without an unregister token, which costs a fifth as much (for
 * the LockedBuffers that Enclave.open makes by the thousand): destroying the owner then does not
 * unregister it, and the registry's callback finds the region dead and does nothing.
 */
export function track(owner: object, region: GuardedRegion | undefined, kind: string, debug: boolean, unregisterable = true): void {
  installExitHook();
  const held: Held = { region, kind, stack: debug ? creationStack() : undefined };
  if (unregisterable) registry.register(owner, held, owner);
  else registry.register(owner, held);
}

/**
 * Destroys `region` when `owner` is garbage-collected, until {@link untrackRegion} of `region`: for a
 * region an owner keeps for a while and gives back while it lives (its other watch stays).
 */
export function trackRegion(owner: object, region: GuardedRegion): void {
  installExitHook();
  registry.register(owner, { region, kind: 'secret', stack: undefined }, region);
}

/** Stops watching `owner` (it was destroyed explicitly). */
export function untrack(owner: object): void {
  registry.unregister(owner);
}

/** Stops the watch {@link trackRegion} set on `region`. */
export function untrackRegion(region: GuardedRegion): void {
  registry.unregister(region);
}

let exitHookInstalled = false;
/** More work for the exit hook (wiping the process key), in order. */
const exitTasks: (() => void)[] = [];

/** Runs `task` when the process exits, after every region was purged; installs the exit hook. */
export function addExitTask(task: () => void): void {
  installExitHook();
  if (!exitTasks.includes(task)) exitTasks.push(task);
}

function purgeOnExit(): void {
  const outcome = purgeRegions();
  for (const task of exitTasks) {
    try {
      task();
    } catch {
      // nothing more can be done at exit
    }
  }
  if (outcome.damaged > 0 || outcome.errors.length > 0) {
    // Nothing else can be done at exit: say it on stderr without changing the exit code.
    try {
      writeSync(
        2,
        `@secure-memory/memguard: at exit, ${outcome.damaged} canary(ies) were damaged and ${outcome.errors.length} buffer(s) could not be wiped\n`,
      );
    } catch {
      // stderr closed
    }
  }
}

/** Purges every region when the process exits; installed once, by the first region made. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', purgeOnExit);
}
