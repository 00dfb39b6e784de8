/**
 * Runs one of the command's child scripts (fuzz, soak) in a fresh process: the child reports JSON
 * lines on stdout; the parent hands each to a callback and says how the child ended, so that a
 * crash (a signal) is reported instead of taking the command down.
 * @module
 */
import { spawn } from 'node:child_process';
import { writeSync } from 'node:fs';

/** How a child ended, with every event it reported. */
export interface ChildEnd {
  events: ({ event: string } & Record<string, unknown>)[];
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last lines of its stderr. */
  stderr: string;
}

/**
 * Runs `script` with `config` (as its JSON argument) under `execArgv`, calling `onEvent` for each
 * JSON line; resolves when the child has ended, however it ended.
 * @throws {Error} (rejects) when the process cannot be spawned.
 */
export function runChildScript(
  script: string,
  config: unknown,
  onEvent: (event: { event: string } & Record<string, unknown>) => void = () => {},
  execArgv: readonly string[] = [],
): Promise<ChildEnd> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...execArgv, script, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const events: ChildEnd['events'] = [];
    let pending = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        const event = JSON.parse(line) as ChildEnd['events'][number];
        events.push(event);
        onEvent(event);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ events, code, signal, stderr }));
  });
}

/** Writes one JSON line on stdout (the child side), synchronously so that a crash right after loses nothing. */
export function send(event: Record<string, unknown>): void {
  writeSync(1, `${JSON.stringify(event)}\n`);
}
