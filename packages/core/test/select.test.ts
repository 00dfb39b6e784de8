import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { BACKEND_ENV, KNOWN_BACKENDS, claimedFlags, createSecretFactory, loadBackend } from '@secure-memory/core';
import { resolveBackendSpecifier } from '@secure-memory/core/backend';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

const rejection = async (p: Promise<unknown>): Promise<{ code?: unknown; cause?: unknown }> => {
  try {
    await p;
  } catch (error) {
    return error as { code?: unknown };
  }
  throw new Error('expected a rejection');
};

afterEach(() => {
  delete process.env[BACKEND_ENV];
});

describe('createSecretFactory', () => {
  it('loads a backend by absolute path and by file URL, passing options', async () => {
    const byPath = await createSecretFactory({ backend: fixture('fake-backend.mjs'), options: { x: 1 } });
    expect(byPath.name).toBe('fake');
    expect((byPath as unknown as { options: unknown }).options).toEqual({ x: 1 });
    const byUrl = await createSecretFactory({ backend: pathToFileURL(fixture('fake-backend.mjs')).href });
    expect(byUrl.name).toBe('fake');
  });

  it('takes the backend from SECURE_MEMORY_BACKEND when none is given', async () => {
    process.env[BACKEND_ENV] = fixture('fake-backend.mjs');
    expect((await createSecretFactory()).name).toBe('fake');
  });

  it('maps short names to packages and resolves relative paths against the working directory', () => {
    expect(resolveBackendSpecifier('memguard')).toBe('@secure-memory/memguard');
    expect(resolveBackendSpecifier('./x.js')).toBe(pathToFileURL(`${process.cwd()}/x.js`).href);
    expect(resolveBackendSpecifier('some-package')).toBe('some-package');
  });

  it('gives ERR_BACKEND_UNAVAILABLE for a missing module, no createFactory, or a malformed factory', async () => {
    expect((await rejection(loadBackend('@secure-memory/does-not-exist'))).code).toBe('ERR_BACKEND_UNAVAILABLE');
    expect((await rejection(loadBackend(fixture('not-a-backend.mjs')))).code).toBe('ERR_BACKEND_UNAVAILABLE');
    const bad = await rejection(loadBackend(fixture('bad-factory.mjs')));
    expect(bad.code).toBe('ERR_BACKEND_UNAVAILABLE');
    expect((bad.cause as { code?: unknown }).code).toBe('ERR_INVALID_ARG_VALUE');
  });

  it('rejects bad configuration with typed errors', async () => {
    expect((await rejection(createSecretFactory('memguard' as never))).code).toBe('ERR_INVALID_ARG_TYPE');
    expect((await rejection(createSecretFactory({ backend: 42 as never }))).code).toBe('ERR_INVALID_ARG_TYPE');
    expect((await rejection(createSecretFactory({ backend: 'x', options: 'y' as never }))).code).toBe('ERR_INVALID_ARG_TYPE');
  });

  it('"auto" picks the loadable backend with the most claims, or explains why none works', async () => {
    const loadable = [];
    for (const name of Object.keys(KNOWN_BACKENDS)) {
      try {
        loadable.push(await loadBackend(name));
      } catch {
        // not installed or not working here
      }
    }
    if (loadable.length === 0) {
      const error = await rejection(createSecretFactory({ backend: 'auto' }));
      expect(error.code).toBe('ERR_BACKEND_UNAVAILABLE');
      expect(error.cause).toBeInstanceOf(AggregateError);
      return;
    }
    const best = Math.max(...loadable.map((f) => claimedFlags(f.guarantees).length));
    const chosen = await createSecretFactory();
    expect(claimedFlags(chosen.guarantees).length).toBe(best);
  });
});
