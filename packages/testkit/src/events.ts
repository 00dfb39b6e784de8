/**
 * The JSON-lines protocol between a parent and its child processes, used by the testkit's probes
 * and by the cli's children (fuzz, soak): the child reports events, one JSON object a line on
 * stdout, written synchronously so that a crash right after loses nothing ({@link sendEvent}); the
 * parent splits the child's stdout into lines and parses each that starts with `{`
 * ({@link readEvents}), or runs a child script to its end ({@link runChildScript}). A line that does
 * not parse is reported to the parent's callback, never thrown: a child that writes garbage does not
 * take its parent down.
 * @module
 */
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';

/** One event a child reports. */
export type ChildEvent = { event: string } & Record<string, unknown>;

/** How much of a child's stderr a parent keeps: its last characters. */
const STDERR_TAIL = 4000;

/** Appends `chunk` to `text`, keeping the last {@link STDERR_TAIL} characters. */
export function appendTail(text: string, chunk: string): string {
  return (text + chunk).slice(-STDERR_TAIL);
}

/**
 * Child side: writes one event as a JSON line on stdout, synchronously. A bigint is written as a
 * `0x`-prefixed hex string.
 */
export function sendEvent(event: Record<string, unknown>): void {
  writeSync(1, `${JSON.stringify(event, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}\n`);
}

/** Child side: reports an error as `{ event: 'error', code, message }` (code `null` when it has none). */
export function sendError(error: unknown): void {
  sendEvent({ event: 'error', code: (error as { code?: unknown } | null)?.code ?? null, message: String((error as Error | null)?.message ?? error) });
}

/**
 * Parent side: reads a child's stdout as JSON lines, calling `onEvent` for each line that starts
 * with `{` and parses, and `onUnparsable` for one that starts with `{` and does not. Other lines
 * (a library's own output) are passed over.
 */
export function readEvents(stdout: NodeJS.ReadableStream, onEvent: (event: ChildEvent) => void, onUnparsable: (line: string) => void = () => {}): void {
  let pending = '';
  stdout.setEncoding('utf8');
  stdout.on('data', (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      let event: ChildEvent;
      try {
        event = JSON.parse(line) as ChildEvent;
      } catch {
        onUnparsable(line);
        continue;
      }
      onEvent(event);
    }
  });
}

/** How a child ended, with every event it reported. */
export interface ChildEnd {
  events: ChildEvent[];
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last {@link STDERR_TAIL} characters of its stderr (and a note for each line on stdout that did not parse). */
  stderr: string;
}

/**
 * Parent side: runs `node [...execArgv] script '<config JSON>'`, calling `onEvent` for each event;
 * resolves when the child has ended, however it ended (a crash is reported by `signal`, not thrown).
 * @throws {Error} (rejects) when the process cannot be spawned.
 * @example
 * ```ts
 * const end = await runChildScript(script, { module: '@secure-memory/sodium' }, (e) => console.error(e.event));
 * if (end.signal !== null) console.error(`the child died by ${end.signal}`);
 * ```
 */
export function runChildScript(script: string, config: unknown, onEvent: (event: ChildEvent) => void = () => {}, execArgv: readonly string[] = []): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...execArgv, script, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const events: ChildEvent[] = [];
    let stderr = '';
    readEvents(
      child.stdout,
      (event) => {
        events.push(event);
        onEvent(event);
      },
      (line) => {
        stderr = appendTail(stderr, `\nunparsable line on stdout: ${line.slice(0, 200)}`);
      },
    );
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = appendTail(stderr, chunk);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ events, code, signal, stderr }));
  });
}
