import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { type SecretFactory, loadBackend } from '@secure-memory/core';

const fixture = fileURLToPath(new URL('./fixtures/fake-backend.mjs', import.meta.url));

it('a `using` declaration closes the secret at the end of its block (downlevelled for Node 20)', async () => {
  const factory: SecretFactory = await loadBackend(fixture);
  let escaped;
  {
    using secret = factory.createRandom(8);
    escaped = secret;
    expect(secret.closed).toBe(false);
    expect(factory.stats().inUse).toBe(1);
  }
  expect(escaped.closed).toBe(true);
  expect(factory.stats().inUse).toBe(0);
});
