// An uncaught exception, with memguard's purge on exit, leaves no plaintext in a core dump taken at
// exit (issue 9). A child holds LockedBuffers, an idle locked-mode secret, an enclave-mode secret in
// an access that never ends, and an opened Enclave; it hands their plaintext to this process on
// fd 3, throws, and an exit hook dumps core after (or, for the control, before) the purge.
//
// How the core is taken: where /proc/sys/kernel/core_pattern is a relative path (here: 'core'),
// the child gets RLIMIT_CORE raised with prlimit and a private temporary directory as its cwd, and
// the hook calls process.abort(): the kernel writes the core there. Where the pattern is a pipe to a
// handler (systemd-coredump, apport) or an absolute path, the file would land out of reach, so the
// hook instead says 'dumping' and blocks, and this process takes the core with gcore (also run where
// both work when MEMGUARD_TEST_GCORE is set). Every core is searched and deleted at once.
//
// The control runs without the purge and with MADV_DONTDUMP skipped (through the test seam): the
// scan must find every plaintext there, or the zero of the real run would prove nothing. With
// MADV_DONTDUMP in force, the core holds none of the plaintext even without the purge: each of the
// two layers is enough on its own, and both are shown.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countInFile } from '@secure-memory/testkit';
import { assertBuilt, fixture } from './helpers.js';

beforeAll(assertBuilt);

type Dumper = 'kernel' | 'gcore';

const SIZES = [32, 64, 48, 40, 56];

/** Can the kernel write a core into a directory we choose (a relative core_pattern)? */
const kernelDumps = (() => {
  try {
    const pattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
    const prlimit = spawnSync('prlimit', ['--version']).status === 0;
    return pattern !== '' && !pattern.startsWith('|') && !pattern.includes('/') && prlimit;
  } catch {
    return false;
  }
})();
const hasGcore = spawnSync('sh', ['-c', 'command -v gcore && command -v gdb']).status === 0;

interface Run {
  /** Hits per plaintext (frozen, mutable, idle locked-mode secret, enclave-mode in access, opened Enclave). */
  hits: number[];
  /** What was still held when the core was taken. */
  held: { buffers: number; secrets: number; pooled: number };
  coreBytes: number;
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

const results: string[] = [];

/** Runs the child, takes its core at exit, counts each plaintext in it, deletes it. */
async function coreAtExit(when: 'purge' | 'no-purge', advice: 'advised' | 'unadvised', dumper: Dumper): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'memguard-core-'));
  try {
    const args = [fixture('core-at-exit.mjs'), when, advice, dumper];
    const command = dumper === 'kernel' ? ['prlimit', '--core=unlimited', '--', process.execPath, ...args] : [process.execPath, ...args];
    const child = spawn(command[0] as string, command.slice(1), { cwd: dir, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    const parts: Buffer[] = [];
    (child.stdio[3] as Readable).on('data', (b: Buffer) => parts.push(b));
    const plaintext = new Promise<Buffer>((resolve) => (child.stdio[3] as Readable).on('end', () => resolve(Buffer.concat(parts))));
    let stdout = '';
    let stderr = '';
    let held: Run['held'] | undefined;
    let gcoreFile: string | undefined;
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      for (;;) {
        const nl = stdout.indexOf('\n');
        if (nl === -1) break;
        const line = stdout.slice(0, nl);
        stdout = stdout.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const event = JSON.parse(line) as { event: string; pid: number } & Run['held'];
        if (event.event !== 'dumping') continue;
        held = { buffers: event.buffers, secrets: event.secrets, pooled: event.pooled };
        if (dumper === 'gcore') {
          const run = spawnSync('gcore', ['-o', join(dir, 'gcore'), String(event.pid)], { encoding: 'utf8', timeout: 600_000 });
          gcoreFile = readdirSync(dir).find((f) => f.startsWith('gcore')) ?? `none (gcore exit ${run.status}: ${run.stderr})`;
          child.stdin?.end('go\n');
        }
      }
    });
    const exit = await new Promise<Run['exit']>((resolve) =>
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal });
      }),
    );
    const bytes = await plaintext;
    expect(bytes.byteLength, stderr).toBe(SIZES.reduce((a, b) => a + b));
    const needles = SIZES.map((size, i) => {
      const start = SIZES.slice(0, i).reduce((a, b) => a + b, 0);
      return bytes.subarray(start, start + size);
    });
    const files = readdirSync(dir);
    const core = dumper === 'gcore' ? gcoreFile : files.find((f) => f.startsWith('core'));
    expect(core, `no core file in ${JSON.stringify(files)}; child: ${JSON.stringify(exit)} ${stderr.slice(-500)}`).toBeDefined();
    const path = join(dir, core as string);
    const coreBytes = statSync(path).size;
    const hits = countInFile(path, needles);
    rmSync(path, { force: true });
    expect(held, 'the exit hook ran').toBeDefined();
    const run: Run = { hits, held: held as Run['held'], coreBytes, exit };
    results.push(`${when} ${advice} ${dumper}: hits ${JSON.stringify(hits)}, core ${Math.round(coreBytes / 2 ** 20)} MiB, held ${JSON.stringify(run.held)}`);
    return run;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The kernel where it can write into our directory; gcore otherwise. gcore writes every mapping in
 * full (about 900 MiB for a Node process, 4 s) where the kernel skips pages never touched (84 MiB
 * apparent, 7 MiB written, 0.2 s), so with both available gcore runs only when
 * MEMGUARD_TEST_GCORE is set, for the control and the purge.
 */
const dumpers: Dumper[] = kernelDumps
  ? ['kernel', ...(hasGcore && process.env['MEMGUARD_TEST_GCORE'] !== undefined ? (['gcore'] as const) : [])]
  : hasGcore
    ? ['gcore']
    : [];

describe.skipIf(dumpers.length === 0)('a core dump taken at exit after an uncaught exception', () => {
  afterAll(() => {
    console.log(`core at exit (hits per plaintext: frozen, mutable, idle locked-mode secret, enclave-mode in access, opened Enclave)\n${results.join('\n')}`);
  });

  describe.each(dumpers)('taken by %s', (dumper) => {
    const exitOf = (run: Run): void => {
      // The kernel: the child dies by SIGABRT (core dumped); gcore: the uncaught exception's code 1.
      if (dumper === 'kernel') expect(run.exit.signal).toBe('SIGABRT');
      else expect(run.exit).toEqual({ code: 1, signal: null });
    };

    it('control: without the purge and without MADV_DONTDUMP, the core holds every plaintext', async () => {
      const run = await coreAtExit('no-purge', 'unadvised', dumper);
      exitOf(run);
      expect(run.held).toMatchObject({ buffers: 3, secrets: 2 });
      for (const [i, hits] of run.hits.entries()) expect(hits, `plaintext ${i}`).toBeGreaterThanOrEqual(1);
    });

    it('with the purge on exit, and without MADV_DONTDUMP: no plaintext in the core', async () => {
      const run = await coreAtExit('purge', 'unadvised', dumper);
      exitOf(run);
      expect(run.held).toEqual({ buffers: 0, secrets: 0, pooled: 0 });
      expect(run.hits).toEqual([0, 0, 0, 0, 0]);
    });

    it.skipIf(dumper === 'gcore' && kernelDumps)('as shipped (the purge and MADV_DONTDUMP): no plaintext in the core', async () => {
      const run = await coreAtExit('purge', 'advised', dumper);
      exitOf(run);
      expect(run.hits).toEqual([0, 0, 0, 0, 0]);
    });

    it.skipIf(dumper === 'gcore' && kernelDumps)('MADV_DONTDUMP alone, without the purge: no plaintext in the core either', async () => {
      const run = await coreAtExit('no-purge', 'advised', dumper);
      exitOf(run);
      expect(run.held).toMatchObject({ buffers: 3, secrets: 2 });
      expect(run.hits).toEqual([0, 0, 0, 0, 0]);
    });
  });
});
