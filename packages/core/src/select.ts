/**
 * Backend selection: by short name, by module specifier, or "auto"; the environment variable
 * `SECURE_MEMORY_BACKEND` replaces the default ("auto") so an operator can swap backends per
 * platform without code changes.
 * @module
 */
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertOptions, describeType } from './assert.js';
import { ErrorCode, SecureMemoryError, SecureMemoryTypeError } from './errors.js';
import { GUARANTEE_FLAGS, claimedFlags, isGuaranteeFlag } from './guarantees.js';
import { BACKENDS, KNOWN_BACKENDS } from './registry.js';
import type { SecretFactory } from './types.js';

/** The environment variable that replaces the default backend. */
export const BACKEND_ENV = 'SECURE_MEMORY_BACKEND';

/**
 * The options type of each backend, by short name. Each backend package adds its own entry
 * (`declare module '@secure-memory/core' { interface BackendOptionsByName { memguard: MemguardOptions } }`),
 * so that once its types are loaded (any import of the package, `import type` included),
 * `createSecretFactory({ backend: 'memguard', options: { mdoe: 'locked' } })` does not compile.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled by declaration merging in each backend package
export interface BackendOptionsByName {}

/** The options `backend` takes: its own type for a backend that declared one, else any record. */
export type BackendOptionsFor<B extends string> = B extends keyof BackendOptionsByName ? BackendOptionsByName[B] : Record<string, unknown>;

/** Options of {@link createSecretFactory}. */
export interface CreateSecretFactoryOptions<B extends string = string> {
  /** A short name (`"memguard"`), a module specifier (package name, absolute path, `./relative` to the working directory, or `file:` URL), or `"auto"`. */
  backend?: B;
  /** Passed to the backend's `createFactory(options)`; typed by {@link BackendOptionsByName} for a backend named by a literal. */
  options?: BackendOptionsFor<B>;
}

/** Turns a short name or module specifier into something `import()` takes. */
export function resolveBackendSpecifier(backend: string): string {
  const known = KNOWN_BACKENDS[backend];
  if (known !== undefined) return known;
  if (backend.startsWith('file:')) return backend;
  if (isAbsolute(backend)) return pathToFileURL(backend).href;
  if (backend.startsWith('./') || backend.startsWith('../')) return pathToFileURL(resolve(backend)).href;
  return backend;
}

function unavailable(backend: string, message: string, cause?: unknown): SecureMemoryError {
  return new SecureMemoryError(ErrorCode.BACKEND_UNAVAILABLE, `Backend "${backend}" is unavailable: ${message}`, {
    backend,
    ...(cause === undefined ? {} : { cause }),
  });
}

async function importBackend(specifier: string): Promise<unknown> {
  try {
    return await import(specifier);
  } catch (error) {
    // A bare name that core cannot see (a strict installer): resolve it from the application instead.
    if ((error as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND' || specifier.startsWith('file:')) throw error;
    let fromApp: string;
    try {
      fromApp = createRequire(pathToFileURL(resolve('package.json')).href).resolve(specifier);
    } catch {
      throw error;
    }
    return await import(pathToFileURL(fromApp).href);
  }
}

/**
 * Checks that `value` has the shape of a {@link SecretFactory} with a complete manifest.
 * @throws {TypeError} `ERR_INVALID_ARG_VALUE` naming what is missing.
 */
export function assertSecretFactory(value: unknown, label = 'factory'): asserts value is SecretFactory {
  const f = value as Partial<SecretFactory> | null;
  const problems: string[] = [];
  if (typeof f !== 'object' || f === null) {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "${label}" must be an object. Received ${describeType(value)}`);
  }
  if (typeof f.name !== 'string' || f.name === '') problems.push('name');
  for (const method of ['new', 'createRandom', 'stats'] as const) if (typeof f[method] !== 'function') problems.push(method);
  const g = f.guarantees as Record<string, unknown> | undefined;
  if (typeof g !== 'object' || g === null) problems.push('guarantees');
  else {
    for (const flag of GUARANTEE_FLAGS) if (typeof g[flag] !== 'boolean') problems.push(`guarantees.${flag}`);
    for (const key of Object.keys(g)) if (!isGuaranteeFlag(key)) problems.push(`guarantees.${key} (unknown flag)`);
  }
  if (problems.length > 0) {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_VALUE, `The "${label}" is not a SecretFactory: bad ${problems.join(', ')}`);
  }
}

/**
 * Imports one backend and builds its factory.
 * @throws {SecureMemoryError} `ERR_BACKEND_UNAVAILABLE` (with `cause`) when it cannot be imported or built; errors of the backend's own option checks pass through.
 */
export async function loadBackend(backend: string, options?: Record<string, unknown>): Promise<SecretFactory> {
  let mod: unknown;
  try {
    mod = await importBackend(resolveBackendSpecifier(backend));
  } catch (error) {
    throw unavailable(backend, 'its module cannot be loaded', error);
  }
  const createFactory = (mod as { createFactory?: unknown }).createFactory;
  if (typeof createFactory !== 'function') throw unavailable(backend, 'its module does not export createFactory()');
  const factory: unknown = createFactory(options);
  try {
    assertSecretFactory(factory, `${backend} factory`);
  } catch (error) {
    throw unavailable(backend, 'createFactory() did not return a SecretFactory', error);
  }
  return factory;
}

/** Makes, reads and closes one small secret: the check that "auto" runs before it trusts a backend. */
export function probeFactory(factory: SecretFactory): void {
  const secret = factory.createRandom(32);
  try {
    const size = secret.withBytes((bytes) => bytes.byteLength);
    if (size !== 32) throw new Error(`a 32-byte secret showed ${size} bytes`);
  } finally {
    secret.close();
  }
}

/**
 * The order `"auto"` tries the backends in: most possible claims (the registry's manifest) first;
 * on a tie, the earlier in {@link BACKENDS}.
 */
const AUTO_ORDER = [...BACKENDS].sort((a, b) => b.claims.length - a.claims.length);

/**
 * Returns a factory of the chosen backend. `backend` defaults to `SECURE_MEMORY_BACKEND`, then
 * `"auto"`: the backend with the most claimed guarantees among those that load and pass a probe here.
 * `"auto"` ranks the backends by the registry's manifest and loads and probes only the first; it
 * goes on to the next only when that one fails to load or probe, or claims here fewer flags than the
 * next could. Where the strongest backend works, it is the only one loaded.
 * @throws {SecureMemoryError} `ERR_BACKEND_UNAVAILABLE`; for "auto" its `cause` is an AggregateError of every backend's reason.
 * @example
 * ```ts
 * const factory = await createSecretFactory({ backend: 'protected-memory', options: { lock: 'best-effort' } });
 * using key = factory.createRandom(32);
 * ```
 */
export async function createSecretFactory<B extends string = string>(config: CreateSecretFactoryOptions<B> = {}): Promise<SecretFactory> {
  assertOptions(config, 'config');
  const options = config.options as Record<string, unknown> | undefined;
  assertOptions(options, 'options');
  const fromEnv = process.env[BACKEND_ENV];
  const backend = config.backend ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : 'auto');
  if (typeof backend !== 'string' || backend === '') {
    throw new SecureMemoryTypeError(ErrorCode.INVALID_ARG_TYPE, `The "backend" option must be a non-empty string. Received ${describeType(backend)}`);
  }
  if (backend !== 'auto') return loadBackend(backend, options);

  const reasons: unknown[] = [];
  let best: SecretFactory | undefined;
  for (const candidate of AUTO_ORDER) {
    // No later backend can claim more than the one in hand: stop before loading it.
    if (best !== undefined && claimedFlags(best.guarantees).length >= candidate.claims.length) break;
    try {
      const factory = await loadBackend(candidate.name, options);
      probeFactory(factory);
      if (best === undefined || claimedFlags(factory.guarantees).length > claimedFlags(best.guarantees).length) best = factory;
    } catch (error) {
      reasons.push(error);
    }
  }
  if (best !== undefined) return best;
  throw unavailable('auto', 'no backend loads and works here', new AggregateError(reasons, 'every backend failed'));
}
