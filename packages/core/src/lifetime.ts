/**
 * When a secret's region is wiped and freed: at close(), when the secret is garbage-collected
 * without close() (with a warning), when the worker thread that made it ends, and, for a region
 * that was retired while a view handed out may still be reachable, once the last such view is
 * collected. {@link ManagedSecret} (secret.ts) holds a {@link Lifetime} and calls the functions
 * exported here; nothing here reaches the secret or its views, so the garbage collector can run it.
 * @module
 */
import { isMainThread } from 'node:worker_threads';
import type { SecretRegion } from './region.js';

/** The `type` of the process warnings of this library. */
const WARNING_TYPE = 'SecureMemoryWarning';
/** The `code` of the warning for a secret the garbage collector wiped and released because nobody closed it. */
const UNRELEASED_WARNING = 'SECURE_MEMORY_UNRELEASED';

/** What a factory's secrets share: the backend's name, and the factory's counter of freed secrets. */
interface Issuer {
  readonly backend: string;
  readonly onFree: () => void;
}

/** Bits of {@link Lifetime.flags}. */
const RETIRED = 1;
const PINNED = 2;
const RELEASED = 4;

/**
 * What is needed to release one secret's region, kept apart from the secret so that the garbage
 * collector can release it (a held value must not reach the secret or the views it handed out).
 * Five fields: a million live secrets hold a million of these.
 */
export interface Lifetime {
  readonly issuer: Issuer;
  readonly size: number;
  region: SecretRegion | undefined;
  /** Views handed out (their ArrayBuffers) that the garbage collector has not collected yet. */
  liveViews: number;
  /**
   * {@link RETIRED}: wiped and retired, waiting for `liveViews` to reach 0 before `free`;
   * {@link PINNED}: a handed-out buffer was detached, the addresses are never released;
   * {@link RELEASED}: `release` ran (by close() or by the garbage collector).
   */
  flags: number;
}

/** Marks that a handed-out buffer was detached: the region's addresses are never released. */
export function pinLifetime(life: Lifetime): void {
  life.flags |= PINNED;
}

/** The backend's short name of a secret, for its errors and its redacted form. */
export function backendOf(life: Lifetime): string {
  return life.issuer.backend;
}

/** One issuer per factory (by its counter callback), so that each lifetime holds one reference for both. */
const issuers = new WeakMap<() => void, Issuer>();

function issuerOf(backend: string, onFree: () => void): Issuer {
  const known = issuers.get(onFree);
  if (known !== undefined && known.backend === backend) return known;
  const issuer = { backend, onFree };
  issuers.set(onFree, issuer);
  return issuer;
}

function freeRetired(life: Lifetime): void {
  const region = life.region;
  if (region === undefined || (life.flags & RETIRED) === 0 || (life.flags & PINNED) !== 0 || life.liveViews > 0) return;
  life.region = undefined;
  workerSecrets?.delete(life);
  try {
    region.free();
  } catch (error) {
    // A canary found damaged now was already reported by retire(); nothing is left to tell.
    void error;
  }
}

/** Releases the region of a handed-out buffer once it is collected (the last one lets a retired region go). */
const bufferRegistry = new FinalizationRegistry<Lifetime>((life) => {
  life.liveViews -= 1;
  freeRetired(life);
});

/** Wipes and releases the region of a secret that became unreachable without close(). */
const secretRegistry = new FinalizationRegistry<Lifetime>((life) => {
  if ((life.flags & RELEASED) !== 0) return;
  let failure: unknown;
  try {
    release(life);
  } catch (error) {
    failure = error;
  }
  process.emitWarning(
    `A ${life.size}-byte secret of ${life.issuer.backend} was garbage-collected without close(); its memory was wiped and released`,
    {
      type: WARNING_TYPE,
      code: UNRELEASED_WARNING,
      ...(failure === undefined ? {} : { detail: `Releasing it failed: ${(failure as { code?: string }).code ?? 'error'}` }),
    },
  );
});

/**
 * The secrets of this thread that are not released yet, when it is a worker thread: when the
 * worker ends by returning or by `process.exit()`, its `exit` event wipes and frees them all (its
 * views die with it). A worker stopped by `terminate()` runs no JavaScript: see the backends.
 */
let workerSecrets: Set<Lifetime> | undefined;

function trackInWorker(life: Lifetime): void {
  if (isMainThread) return;
  if (workerSecrets === undefined) {
    const live = new Set<Lifetime>();
    workerSecrets = live;
    process.once('exit', () => {
      for (const each of [...live]) {
        each.liveViews = 0; // the thread's views end with it
        each.flags &= ~PINNED;
        try {
          release(each);
          freeRetired(each);
        } catch {
          // a damaged canary has no one left to tell; the memory is released all the same
        }
      }
      live.clear();
    });
  }
  workerSecrets.add(life);
}

/**
 * Wipes the region, then frees it, or retires it while a handed-out view may still be reachable.
 * `onFree` runs once either way.
 */
function release(life: Lifetime): void {
  const region = life.region;
  if (region === undefined || (life.flags & RELEASED) !== 0) return;
  life.flags |= RELEASED;
  try {
    region.wipe();
  } finally {
    try {
      if (region.retire !== undefined && (life.liveViews > 0 || (life.flags & PINNED) !== 0)) {
        life.flags |= RETIRED;
        region.retire();
      } else {
        life.region = undefined;
        workerSecrets?.delete(life);
        region.free();
      }
    } finally {
      life.issuer.onFree();
    }
  }
}

/** A new secret's lifetime; one whose region can be retired is released by the garbage collector and at its worker's end too. */
export function startLifetime(owner: object, backend: string, region: SecretRegion, size: number, onFree: () => void): Lifetime {
  const life: Lifetime = { issuer: issuerOf(backend, onFree), size, region, liveViews: 0, flags: 0 };
  // Only regions that can be retired are released by core: the held value reaches the region,
  // and an older region (memguard's) holds its secret and releases itself when it is collected.
  if (region.retire !== undefined) {
    secretRegistry.register(owner, life, owner);
    trackInWorker(life);
  }
  return life;
}

/** Counts a view handed out over `buffer` until the garbage collector collects it. */
export function countHandedView(life: Lifetime, buffer: ArrayBuffer): void {
  life.liveViews += 1;
  bufferRegistry.register(buffer, life);
}

/** Wipes and frees (or retires) the region at close(): the garbage collector has nothing left to do. */
export function endLifetime(owner: object, life: Lifetime): void {
  secretRegistry.unregister(owner);
  release(life);
}
