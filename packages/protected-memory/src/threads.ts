/**
 * Mappings of worker threads, released when their thread is gone. A worker stopped by
 * `terminate()` runs no JavaScript (core's `exit` handler covers `process.exit()` and a normal end),
 * and koffi's views have no native finalizer that could unmap at the worker's teardown. So every
 * mapping a worker thread makes is registered, with the kernel id of its thread, in a table in
 * shared memory (a SharedArrayBuffer handed to workers through `setEnvironmentData`, which Node
 * clones into every worker spawned afterwards). The mappings of threads that no longer exist
 * (`/proc/self/task/<tid>` is gone) are wiped, unlocked and unmapped as soon as the thread that
 * spawned the worker sees its `exit` event (every `Worker` a thread creates after it built a factory
 * is watched through the `worker_threads` diagnostics channel), and again by any thread of the
 * process that uses this backend: when it builds a factory, before it reports `stats()`, and before
 * it gives up an allocation at RLIMIT_MEMLOCK or at the mapping limit.
 *
 * Limits: a worker is covered only when the thread that spawned it had built a protected-memory
 * factory first (else the worker starts a table of its own, which only its own workers see); the
 * table holds {@link CAPACITY} mappings (more are not registered, and stay until the process
 * ends); a thread id reused by the kernel for a new thread before the reap delays the reap.
 * @module
 */
import { subscribe } from 'node:diagnostics_channel';
import { existsSync } from 'node:fs';
import { getEnvironmentData, isMainThread, setEnvironmentData } from 'node:worker_threads';
import type { Libc } from './libc.js';
import { PROT_READ, PROT_WRITE } from './libc.js';

const KEY = 'secure-memory.protected-memory.worker-mappings';
/** Mappings the table holds (a slab is one mapping). */
const CAPACITY = 16_384;
const FREE = 0;
const WRITING = 1;
const LIVE = 2;
const REAPING = 3;

interface Table {
  /** FREE, WRITING, LIVE or REAPING per entry. */
  states: Int32Array;
  tids: Int32Array;
  lengths: Float64Array;
  addresses: BigUint64Array;
}

let table: Table | undefined;
/** Where this thread looks for a free entry next. */
let hint = 0;
/** Registrations to skip after the table was found full (each full scan costs {@link CAPACITY} steps). */
let skipWhileFull = 0;

function layout(shared: SharedArrayBuffer): Table {
  return {
    addresses: new BigUint64Array(shared, 0, CAPACITY),
    lengths: new Float64Array(shared, 8 * CAPACITY, CAPACITY),
    states: new Int32Array(shared, 16 * CAPACITY, CAPACITY),
    tids: new Int32Array(shared, 20 * CAPACITY, CAPACITY),
  };
}

/** Whether this thread reaps the workers it spawns at their `exit` event. */
let watching = false;

/**
 * Shares the table with the workers this thread spawns from now on, and reaps each of them as soon
 * as it has ended: at the `exit` event of every `Worker` this thread creates (Node announces each on
 * the `worker_threads` diagnostics channel, and emits `exit` after the thread is joined).
 */
export function watchWorkers(lib: Libc): void {
  workerTable();
  if (watching) return;
  watching = true;
  subscribe('worker_threads', (message) => {
    const worker = (message as { worker?: { once?: unknown } } | undefined)?.worker;
    if (typeof worker?.once === 'function') (worker as { once(event: 'exit', listener: () => void): void }).once('exit', () => reapDeadThreads(lib));
  });
}

/** The process's table (this thread's copy of it), made and shared with later workers on first use. */
function workerTable(): Table {
  if (table !== undefined) return table;
  const inherited = getEnvironmentData(KEY);
  const shared = inherited instanceof SharedArrayBuffer ? inherited : new SharedArrayBuffer(24 * CAPACITY);
  if (!(inherited instanceof SharedArrayBuffer)) setEnvironmentData(KEY, shared);
  table = layout(shared);
  return table;
}

/** Where a mapping of this thread is registered (-1: the main thread's, or the table was full). */
export type Registration = number;

/** Registers a mapping made by this thread, when it is a worker thread. */
export function register(lib: Libc, address: bigint, length: number): Registration {
  if (isMainThread) return -1;
  if (skipWhileFull > 0) {
    skipWhileFull -= 1;
    return -1;
  }
  const t = workerTable();
  for (let n = 0; n < CAPACITY; n += 1) {
    const i = (hint + n) % CAPACITY;
    if (Atomics.compareExchange(t.states, i, FREE, WRITING) !== FREE) continue;
    t.addresses[i] = address;
    t.lengths[i] = length;
    t.tids[i] = lib.gettid();
    Atomics.store(t.states, i, LIVE);
    hint = (i + 1) % CAPACITY;
    return i;
  }
  skipWhileFull = 256;
  return -1;
}

/** Unregisters a mapping before its owner unmaps it (so that no reaper can touch the addresses after). */
export function unregister(registration: Registration): void {
  if (registration < 0 || table === undefined) return;
  Atomics.compareExchange(table.states, registration, LIVE, FREE);
}

/**
 * Wipes, unlocks and unmaps the registered mappings of threads that are gone. Returns how many.
 * Never throws: a mapping it cannot make writable is unmapped unwiped (the thread is gone, nothing
 * else can reach it), and one it cannot unmap stays registered for the next reap.
 */
export function reapDeadThreads(lib: Libc): number {
  if (table === undefined) return 0;
  const t = table;
  const alive = new Map<number, boolean>();
  let reaped = 0;
  for (let i = 0; i < CAPACITY; i += 1) {
    if (Atomics.load(t.states, i) !== LIVE) continue;
    const tid = t.tids[i] as number;
    let isAlive = alive.get(tid);
    if (isAlive === undefined) {
      isAlive = existsSync(`/proc/self/task/${tid}`);
      alive.set(tid, isAlive);
    }
    if (isAlive || Atomics.compareExchange(t.states, i, LIVE, REAPING) !== LIVE) continue;
    const address = t.addresses[i] as bigint;
    const length = t.lengths[i] as number;
    if (lib.mprotect(address, length, PROT_READ | PROT_WRITE) === 0) lib.view(address, length).fill(0);
    lib.munlock(address, length);
    if (lib.munmap(address, length) === 0) {
      Atomics.store(t.states, i, FREE);
      reaped += 1;
    } else {
      Atomics.store(t.states, i, LIVE);
    }
  }
  return reaped;
}
