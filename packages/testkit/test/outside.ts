import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fillPattern, readEvents, scanMemory } from '@secure-memory/testkit';

/**
 * The path of one of the backend probes in test/fixtures/backend/: child programs that take a
 * backend's module specifier and options as arguments, shared by every backend package's tests.
 */
export const probeFixture = (name: string): string => fileURLToPath(new URL(`./fixtures/backend/${name}`, import.meta.url));
const fixture = probeFixture;

/** The bytes the fixtures in test/fixtures/backend/ make from `seed` (the testkit's fillPattern). */
export function pattern(seed: number, length = 32): Uint8Array {
  return fillPattern(new Uint8Array(length), seed);
}

/** Every 16-byte window of `bytes` (a partial copy counts as a copy). */
export function windows(bytes: Uint8Array, width = 16): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + width <= bytes.length; i += 1) out.push(bytes.slice(i, i + width));
  return out;
}

export interface HeldChild {
  /** The JSON line the child printed when ready. */
  report: Record<string, unknown>;
  /** Hits per needle list: how many addresses held any window of each. */
  hits: number[];
}

/**
 * Runs a fixture with `--expose-gc` (after `wrap`, such as setpriv and prlimit), waits for its JSON line, scans its memory from outside (this
 * process reads /proc/<pid>/mem) for each needle list, then lets it exit.
 */
export function holdAndScan(name: string, args: string[], needleSets: Uint8Array[][], execArgv: string[] = [], wrap: readonly string[] = []): Promise<HeldChild> {
  return new Promise((resolve, reject) => {
    const [command, ...argv] = [...wrap, process.execPath, '--expose-gc', ...execArgv, fixture(name), ...args];
    const child = spawn(command as string, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    let done = false;
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // The fixture's first JSON line (the protocol of src/events.ts) says it is ready.
    readEvents(
      child.stdout,
      (report) => {
        if (done) return;
        done = true;
        try {
          const hits = needleSets.map((needles) => {
            const scan = scanMemory(child.pid as number, needles);
            return new Set(scan.hits.map((h) => h.address - BigInt(h.needle))).size;
          });
          child.stdin.end('go\n');
          child.once('exit', () => resolve({ report, hits }));
        } catch (error) {
          child.kill('SIGKILL');
          reject(error as Error);
        }
      },
      (line) => {
        if (done) return;
        done = true;
        child.kill('SIGKILL');
        reject(new Error(`the child's report does not parse: ${line.slice(0, 200)}`));
      },
    );
    child.once('exit', (code, signal) => {
      if (!done) reject(new Error(`child ended before it was ready (${code ?? signal}): ${err}`));
    });
  });
}
