/**
 * Loading the backend under test. The design says every guarantee flag defaults to false and a
 * flag missing from the manifest is false; core's `loadBackend` refuses an incomplete manifest, so
 * the testkit completes it (missing flags false) before judging the backend by what it does.
 * @module
 */
import { ErrorCode, GUARANTEE_FLAGS, type SecretFactory, loadBackend } from '@secure-memory/core';
import { assertSecretFactory, defineGuarantees, isGuaranteeFlag, resolveBackendSpecifier } from '@secure-memory/core/backend';

/** A manifest whose keys are known flags with boolean or missing values. */
function incompleteManifest(value: unknown): value is Record<string, boolean | undefined> {
  if (typeof value !== 'object' || value === null) return false;
  const entries = Object.entries(value as Record<string, unknown>);
  return entries.every(([k, v]) => isGuaranteeFlag(k) && (v === undefined || typeof v === 'boolean')) && GUARANTEE_FLAGS.some((f) => typeof (value as Record<string, unknown>)[f] !== 'boolean');
}

/**
 * Loads a backend like core's `loadBackend`, but a manifest that leaves flags out is completed with
 * `false` for them instead of being refused (the factory's own `guarantees` property is replaced
 * where it can be, else the factory is wrapped with its methods bound).
 * @throws {SecureMemoryError} `ERR_BACKEND_UNAVAILABLE` as `loadBackend` does for anything else.
 */
export async function loadTarget(module: string, options?: Record<string, unknown>): Promise<SecretFactory> {
  try {
    return await loadBackend(module, options);
  } catch (error) {
    if ((error as { code?: unknown }).code !== ErrorCode.BACKEND_UNAVAILABLE) throw error;
    let factory: unknown;
    try {
      const mod = (await import(resolveBackendSpecifier(module))) as { createFactory?: (o?: unknown) => unknown };
      factory = typeof mod.createFactory === 'function' ? mod.createFactory(options) : undefined;
    } catch {
      throw error;
    }
    const f = factory as Partial<SecretFactory> | undefined;
    if (f === undefined || typeof f !== 'object' || f === null || !incompleteManifest(f.guarantees)) throw error;
    const guarantees = defineGuarantees(Object.fromEntries(Object.entries(f.guarantees).filter(([, v]) => v !== undefined)));
    let completed: SecretFactory;
    try {
      Object.defineProperty(f, 'guarantees', { value: guarantees, enumerable: true });
      completed = f as SecretFactory;
    } catch {
      const bound = (name: string): unknown => (typeof (f as Record<string, unknown>)[name] === 'function' ? ((f as Record<string, (...a: unknown[]) => unknown>)[name] as (...a: unknown[]) => unknown).bind(f) : undefined);
      completed = Object.freeze({
        name: f.name as string,
        guarantees,
        new: bound('new'),
        createRandom: bound('createRandom'),
        stats: bound('stats'),
        ...(typeof (f as { fromFd?: unknown }).fromFd === 'function' ? { fromFd: bound('fromFd') } : {}),
      }) as unknown as SecretFactory;
    }
    assertSecretFactory(completed, `${module} factory`);
    return completed;
  }
}
