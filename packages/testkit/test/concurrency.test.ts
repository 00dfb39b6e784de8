import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '@secure-memory/core';
import { runAsyncInterleaving, runWorkers } from '@secure-memory/testkit';

const CONTROL = '@secure-memory/testkit/control';
const BROKEN = fileURLToPath(new URL('./fixtures/broken-backend.mjs', import.meta.url));

describe('runWorkers', () => {
  it('runs four threads and this one at once; each loads the backend, every thread ends clean', async () => {
    const result = await runWorkers({ module: CONTROL, workers: 4, operations: 2000, mainFactory: await loadBackend(CONTROL) });
    expect(result.threads.map((t) => t.thread)).toEqual(['worker 1', 'worker 2', 'worker 3', 'worker 4', 'main thread']);
    expect(result.threads.filter((t) => !t.ok)).toEqual([]);
    expect(result.threads.every((t) => t.digestMatches && t.inUse === 0 && t.operations >= 2000)).toBe(true);
    expect(result.operations).toBeGreaterThanOrEqual(5 * 2000);
  });

  it('fails for a backend that breaks the contract (its secrets are never freed)', async () => {
    const result = await runWorkers({ module: BROKEN, workers: 2, operations: 500 });
    expect(result.ok).toBe(false);
    expect(result.threads.every((t) => !t.ok && t.inUse !== 0)).toBe(true);
  });

  it('reports a thread that cannot load the backend instead of waiting for it', async () => {
    const result = await runWorkers({ module: '@secure-memory/no-such-backend', workers: 2, operations: 10 });
    expect(result.ok).toBe(false);
    expect(result.threads.every((t) => t.error?.startsWith('ERR_BACKEND_UNAVAILABLE'))).toBe(true);
  });
});

describe('runAsyncInterleaving', () => {
  it('holds many accesses at once, refuses new ones on closed secrets, frees each at its last access', async () => {
    const result = await runAsyncInterleaving(await loadBackend(CONTROL), { accesses: 600, secrets: 4, seed: 7 });
    expect(result.problems).toEqual([]);
    // The waits are turns of the event loop, not timers: seed 7 holds 194 at once on any machine, busy or idle.
    expect(result.maxPending).toBeGreaterThanOrEqual(100);
    expect(result.closes).toBeGreaterThan(0);
    expect(result.refused).toBeGreaterThan(0);
  });

  it('finds the problems of a backend that lets closed secrets be used and never frees them', async () => {
    const result = await runAsyncInterleaving(await loadBackend(BROKEN), { accesses: 300, secrets: 4, seed: 7 });
    expect(result.ok).toBe(false);
    expect(result.problems.some((p) => p.startsWith("an access on a closed secret resolved"))).toBe(true);
    expect(result.problems.some((p) => p.startsWith("stats().inUse differs"))).toBe(true);
  });
});
