/** The repository's examples that use this package run on every backend. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BACKENDS as REGISTRY } from '@secure-memory/core';
import { describe, expect, it } from 'vitest';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));
const BACKENDS = REGISTRY.map((b) => b.name);

describe('examples/envelope-encryption.mjs', () => {
  it.each(BACKENDS)('wraps, unwraps and refuses a moved record on %s', (backend) => {
    const run = spawnSync(process.execPath, ['envelope-encryption.mjs'], {
      cwd: EXAMPLES,
      encoding: 'utf8',
      env: { ...process.env, SECURE_MEMORY_BACKEND: backend },
    });
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(`envelope encryption ok with ${backend} (Secret(${backend}, 32 bytes), Aead(aes-256-gcm))\n`);
  });
});
