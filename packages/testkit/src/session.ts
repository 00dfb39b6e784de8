/**
 * The parent side of one probe child (the child is `child.ts`): starts it with its config, drives
 * it with commands on stdin, awaits its events (the JSON lines of `events.ts`), collects the
 * plaintext frames it writes on fd 3, and says how it ended; a child that writes garbage, dies or
 * overruns its time limit is reported, never a crash of this process.
 * @module
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ChildEnd, type ChildEvent, appendTail, readEvents } from './events.js';
import { type ChildConfig, parseFrames } from './protocol.js';

/** The compiled child script; the same path from src/ (tests) and dist/. */
const CHILD_SCRIPT = fileURLToPath(new URL('../dist/child.js', import.meta.url));

/** How a child process ended, with every event it reported. */
export interface ChildOutcome extends ChildEnd {
  /** Killed by the time limit. */
  timedOut?: boolean;
}

/** How long a probe child may live; the holder, which is scanned and dumped, and the reliability child get longer. */
const CHILD_TIMEOUT_MS: Record<ChildConfig['mode'], number> = {
  hold: 300_000,
  reliability: 600_000,
  contract: 120_000,
  'keep-view': 120_000,
  'keep-after-close': 120_000,
  transfer: 120_000,
  'guard-after': 120_000,
  'guard-before': 120_000,
  canary: 120_000,
  'key-use': 900_000,
};

/** A step of the probes that failed, and why; `runConformance` turns it into the report's `failure`. */
export class ProbeFailure extends Error {
  readonly code = 'ERR_PROBE_FAILED';
  constructor(readonly step: string, readonly reason: string) {
    super(`${step}: ${reason}`);
    this.name = 'ProbeFailure';
  }
}

/** A running child process, driven by commands and awaited by event name. */
export class ChildSession {
  readonly #child;
  readonly #events: ChildEvent[] = [];
  readonly #waiters: { name: string; resolve: (e: ChildEvent) => void; reject: (e: Error) => void }[] = [];
  #stderr = '';
  #timedOut = false;
  readonly #frames = new Map<string, Buffer>();
  readonly exited: Promise<ChildOutcome>;

  constructor(config: ChildConfig) {
    // The holder collects garbage before its last scan; the flag is not given to others (worker threads refuse it in execArgv).
    this.#child = spawn(process.execPath, [...(config.mode === 'hold' || config.mode === 'key-use' ? ['--expose-gc'] : []), CHILD_SCRIPT, JSON.stringify(config)], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    const limit = CHILD_TIMEOUT_MS[config.mode];
    const timer = setTimeout(() => {
      this.#timedOut = true;
      this.#child.kill('SIGKILL');
    }, limit);
    // Nothing thrown in these handlers: a child that writes garbage or dies early is reported, never a crash of this process.
    this.#child.on('error', (error) => {
      this.#stderr += `\nspawning the child failed: ${error.message}`;
    });
    this.#child.stdin.on('error', () => {});
    readEvents(
      this.#child.stdout,
      (event) => this.#push(event),
      (line) => {
        this.#stderr = appendTail(this.#stderr, `\nunparsable line on stdout: ${line.slice(0, 200)}`);
      },
    );
    this.#child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = appendTail(this.#stderr, chunk);
    });
    const fd3 = this.#child.stdio[3] as NodeJS.ReadableStream;
    let rest = Buffer.alloc(0);
    fd3.on('data', (b: Buffer) => {
      const parsed = parseFrames(Buffer.concat([rest, b]));
      for (const [label, bytes] of parsed.frames) this.#frames.set(label, Buffer.from(bytes));
      rest.fill(0);
      rest = Buffer.from(parsed.rest);
      parsed.rest.fill(0);
      b.fill(0);
    });
    fd3.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.#child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const outcome = { events: this.#events, code, signal, stderr: this.#stderr, timedOut: this.#timedOut };
        const why = this.#timedOut ? `the child was killed after ${limit / 1000} s (its time limit)` : `the child ended (code ${code}, signal ${signal})`;
        for (const w of this.#waiters.splice(0)) w.reject(new Error(`${why} before "${w.name}": ${this.#describeFailure()}`));
        resolve(outcome);
      });
    });
  }

  /** Waits until the child has sent the plaintext of each label (fd 3 and stdout are separate pipes, so events may come first). */
  async waitFrames(labels: readonly string[]): Promise<Buffer[]> {
    const deadline = Date.now() + 30_000;
    while (labels.some((l) => !this.#frames.has(l))) {
      if (Date.now() > deadline || this.#child.exitCode !== null || this.#child.signalCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return this.frames(labels);
  }

  /** The plaintexts the child sent, by label; the caller wipes them. */
  frames(labels: readonly string[]): Buffer[] {
    return labels.map((label) => {
      const frame = this.#frames.get(label);
      if (frame === undefined) throw new Error(`the child sent no plaintext for "${label}"`);
      return frame;
    });
  }

  wipeFrames(): void {
    for (const frame of this.#frames.values()) frame.fill(0);
    this.#frames.clear();
  }

  get pid(): number {
    return this.#child.pid as number;
  }

  #describeFailure(): string {
    const error = this.#events.find((e) => e.event === 'error');
    return error !== undefined ? `${String(error.code)}: ${String(error.message)}` : this.#stderr.trim().split('\n').slice(-3).join(' | ');
  }

  #push(event: ChildEvent): void {
    this.#events.push(event);
    const index = this.#waiters.findIndex((w) => w.name === event.event);
    if (index !== -1) this.#waiters.splice(index, 1)[0]?.resolve(event);
    if (event.event === 'error') {
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`the child failed: ${this.#describeFailure()}`));
    }
  }

  waitFor(name: string): Promise<ChildEvent> {
    const seen = this.#events.find((e) => e.event === name);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => this.#waiters.push({ name, resolve, reject }));
  }

  async command(line: string, reply: string): Promise<ChildEvent> {
    this.#child.stdin.write(`${line}\n`);
    return this.waitFor(reply);
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}

/** Runs a child to its end and returns how it ended. */
export async function runChild(config: ChildConfig): Promise<ChildOutcome> {
  const session = new ChildSession(config);
  const outcome = await session.exited;
  session.wipeFrames();
  return outcome;
}
