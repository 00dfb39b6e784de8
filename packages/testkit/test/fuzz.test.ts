import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadBackend } from '@secure-memory/core';
import { runContract, runFuzz } from '@secure-memory/testkit';

const CONTROL = '@secure-memory/testkit/control';
const OVERLAP = fileURLToPath(new URL('./fixtures/overlap-backend.mjs', import.meta.url));
const BROKEN = fileURLToPath(new URL('./fixtures/broken-backend.mjs', import.meta.url));

describe('runFuzz', () => {
  it('passes on the control, runs every kind of command, and counts what it ran', async () => {
    const result = await runFuzz({ module: CONTROL, seed: 424242, numRuns: 100 });
    expect(result.failure?.text).toBeUndefined();
    expect(result).toMatchObject({ ok: true, seed: 424242, numRuns: 100 });
    expect(Object.keys(result.commandCounts).sort()).toEqual(
      ['close', 'createRandom', 'equals', 'fromFd', 'new', 'read', 'settle', 'useAfterClose', 'withBytes', 'withBytesAsync'].sort(),
    );
    const sum = Object.values(result.commandCounts).reduce((a, b) => a + b, 0);
    expect(sum).toBe(result.commandsRun);
    expect(result.operations).toBeGreaterThan(result.commandsRun);
  });

  it('is deterministic for a seed, and draws a seed when given none', async () => {
    const [a, b] = [await runFuzz({ module: CONTROL, seed: 7, numRuns: 20 }), await runFuzz({ module: CONTROL, seed: 7, numRuns: 20 })];
    expect(a.commandCounts).toEqual(b.commandCounts);
    const drawn = await runFuzz({ module: CONTROL, numRuns: 5 });
    expect(Number.isSafeInteger(drawn.seed)).toBe(true);
    expect(drawn.ok).toBe(true);
  });

  it('finds a bug no single contract check meets, shrinks it, and prints the seed, the path and the sequence', async () => {
    const contract = await runContract(await loadBackend(OVERLAP));
    expect(contract.checks.filter((c) => !c.ok)).toEqual([]);

    const result = await runFuzz({ module: OVERLAP, seed: 424242, numRuns: 200 });
    expect(result.ok).toBe(false);
    const failure = result.failure!;
    expect(failure.seed).toBe(424242);
    expect(failure.path).toMatch(/^\d+(:\d+)*$/);
    expect(failure.replayPath).not.toBeNull();
    // Shrunk to a handful of commands, among them one that makes a secret larger than a 2 KiB slot.
    const lines = failure.counterexample.split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeLessThanOrEqual(4);
    expect(failure.text).toContain('seed 424242');
    expect(failure.text).toContain(failure.path);
    expect(failure.text).toContain(failure.counterexample);
    expect(failure.error).toMatch(/does not hold the bytes/);

    // The seed and path replay the shrunk sequence at once.
    const replay = await runFuzz({ module: OVERLAP, seed: failure.seed, path: failure.path, replayPath: failure.replayPath! });
    expect(replay.ok).toBe(false);
    expect(replay.failure?.counterexample).toBe(failure.counterexample);
  });

  it('fails on a backend that breaks the contract outright', async () => {
    const result = await runFuzz({ module: BROKEN, seed: 424242, numRuns: 50 });
    expect(result.ok).toBe(false);
    expect(result.failure?.counterexample.length).toBeGreaterThan(0);
  });

  it('rejects bad options with typed errors', async () => {
    await expect(runFuzz({ module: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runFuzz({ module: CONTROL, numRuns: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runFuzz({ module: CONTROL, numRuns: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(runFuzz({ module: CONTROL, path: 3 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runFuzz({ module: CONTROL, options: [] as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runFuzz({ module: '@secure-memory/no-such-backend' })).rejects.toMatchObject({ code: 'ERR_BACKEND_UNAVAILABLE' });
  });
});
