/**
 * The child of the `capacity` benchmark: makes live 32-byte secrets until the backend refuses one
 * or the cap is reached, then reports one JSON line. Run as an unprivileged user so that
 * RLIMIT_MEMLOCK binds. It also reports the growth of the resident set over its baseline, both read
 * from /proc/self/status after a full garbage collection (the child runs with `--expose-gc`).
 * `node --expose-gc capacity-child.js '<{"module","options","cap"}>'`
 * @module
 */
import { loadBackend, type Secret } from '@secure-memory/core';
import { readMapCount, readStatusBytes } from '@secure-memory/core/backend';

const { module, options, cap } = JSON.parse(process.argv[2] ?? '{}') as { module: string; options?: Record<string, unknown>; cap: number };
const factory = await loadBackend(module, options);
const collect = (globalThis as { gc?: () => void }).gc ?? ((): void => {});
/** VmRSS after a full collection (twice: the first may leave finalizers' garbage for the second). */
function settledRss(): number {
  collect();
  collect();
  return readStatusBytes('VmRSS') ?? 0;
}
// One secret made and closed first, so that what every secret shares (the addon, a process key, a
// pool, the first slab) is in the baseline, not counted against the secrets.
try {
  factory.createRandom(32).close();
} catch {
  // the loop below meets the same error and reports it as what stopped it
}
const rssBefore = settledRss();
const mapsBefore = readMapCount() ?? 0;
const lockedBefore = readStatusBytes('VmLck') ?? 0;
const secrets: Secret[] = [];
let stoppedBy: string | null = null;
const started = process.hrtime.bigint();
while (secrets.length < cap) {
  try {
    secrets.push(factory.createRandom(32));
  } catch (error) {
    stoppedBy = (error as { code?: string }).code ?? String(error);
    break;
  }
}
const ms = Number(process.hrtime.bigint() - started) / 1e6;
const count = secrets.length;
const lockedBytes = (readStatusBytes('VmLck') ?? 0) - lockedBefore;
const mappings = (readMapCount() ?? 0) - mapsBefore;
// A turn of the event loop first: V8 keeps every WeakRef's target made in a job alive until the job
// ends (and Node-API runs its finalizers in a later turn), so only then is the heap settled.
await new Promise((resolve) => setImmediate(resolve));
const rssBytes = settledRss() - rssBefore;
const readable = secrets.every((s) => s.withBytes((b) => b.byteLength === 32));
process.stdout.write(`${JSON.stringify({ count, stoppedBy, ms, lockedBytes, mappings, rssBytes, readable, uid: process.getuid?.() })}\n`);
process.exit(0);
