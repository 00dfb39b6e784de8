/**
 * A child process that reports keys on fd 3 (written straight from their protected views) and
 * holds still to be scanned from outside with the testkit's scanners.
 */
import { spawn } from 'node:child_process';
import { type WindowScanHit, isProtectedMapping, scanProcess } from '@secure-memory/testkit';

/** A child that reported its keys on fd 3 and is ready to be scanned. */
export interface Holder {
  pid: number;
  /** The `ready` event's fields. */
  ready: Record<string, unknown>;
  /** Everything the child wrote to fd 3. */
  keyBytes: Buffer;
}

/**
 * Runs `node --expose-gc <args>` with fd 3 as a pipe, waits for its `{"event":"ready"}` line and
 * the end of fd 3, calls `observe`, then ends the child.
 */
export async function withHolder<T>(args: string[], observe: (holder: Holder) => T): Promise<T> {
  const child = spawn(process.execPath, ['--expose-gc', ...args], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  try {
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const keyBytes = new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      const fd3 = child.stdio[3] as NodeJS.ReadableStream;
      fd3.on('data', (b: Buffer) => parts.push(b));
      fd3.on('end', () => resolve(Buffer.concat(parts)));
      fd3.on('error', reject);
    });
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      let pending = '';
      child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        pending += chunk;
        const line = pending.split('\n').find((l) => l.includes('"ready"'));
        if (line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>);
      });
      child.on('exit', (code, signal) => reject(new Error(`the child ended (${code}, ${signal}) before it was ready: ${stderr}`)));
    });
    const event = await ready;
    return observe({ pid: child.pid as number, ready: event, keyBytes: await keyBytes });
  } finally {
    child.stdin?.end('exit\n');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    await exited;
  }
}

/** Copies of `key` (any 16-byte window, raw or encoded) in process `pid`, split by where they lie; `key` is wiped afterwards. */
export function scanForKey(pid: number, key: Buffer): { protected: WindowScanHit[]; unprotected: WindowScanHit[] } {
  try {
    const { hits } = scanProcess(pid, [key]);
    return { protected: hits.filter((h) => isProtectedMapping(h.mapping)), unprotected: hits.filter((h) => !isProtectedMapping(h.mapping)) };
  } finally {
    key.fill(0);
  }
}
