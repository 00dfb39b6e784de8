import { createFactory } from '@secure-memory/memguard';
import { addon } from './packages/memguard/dist/native.js';
import { runFloor, threadCpuNs } from '@secure-memory/memguard/bench';
const lib = addon();
const PAGE = 4096;
const MEMGUARD_NEW = [
  { call: 'mmap', pages: 3, prot: 'none' },
  { call: 'mprotect', page: 1, pages: 1, prot: 'readwrite' },
  { call: 'mlock', page: 1, pages: 1 },
  { call: 'madvise', page: 0, pages: 3, advice: 'dontdump' },
  { call: 'madvise', page: 0, pages: 3, advice: 'wipeonfork' },
  { call: 'write', offset: 2 * PAGE - 32, bytes: 32 },
  { call: 'mprotect', page: 1, pages: 1, prot: 'none' },
];
const floor = { body: [...MEMGUARD_NEW, { call: 'mprotect', page: 1, pages: 1, prot: 'readwrite' }, { call: 'wipe', offset: PAGE, bytes: PAGE }, { call: 'munmap' }] };
const f = createFactory({ mode: 'locked' });
const src = Buffer.alloc(32);
const canary = new Uint8Array(16).fill(5);
const pattern = Buffer.alloc(32, 7);
function bare() {
  const base = lib.map(3 * PAGE);
  const inner = base + BigInt(PAGE);
  lib.prepare(base, 3 * PAGE, inner, PAGE, false);
  lib.canaryFill(inner, PAGE - 32, canary);
  const ab = lib.view(inner + BigInt(PAGE - 32), 32, 0);
  new Uint8Array(ab).set(pattern);
  lib.detach(ab);
  lib.protect(inner, PAGE, lib.PROT_NONE);
  lib.protect(inner, PAGE, lib.PROT_READ | lib.PROT_WRITE);
  lib.canaryCheckWipe(inner, PAGE - 32, canary, inner, PAGE);
  lib.release(inner, PAGE, base, 3 * PAGE);
}
const N = 2000;
const r = { full: [], bare: [], c: [] };
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
for (let k = 0; k < 15; k++) {
  let t = threadCpuNs(); for (let i = 0; i < N; i++) { src.set(pattern); f.new(src).close(); } r.full.push((threadCpuNs() - t) / N);
  t = threadCpuNs(); for (let i = 0; i < N; i++) bare(); r.bare.push((threadCpuNs() - t) / N);
  r.c.push(runFloor(floor, N).cpuNs / N);
}
console.log({ full: med(r.full), bare: med(r.bare), c: med(r.c), fullXc: med(r.full.map((x, i) => x / r.c[i])), bareXc: med(r.bare.map((x, i) => x / r.c[i])), fullXbare: med(r.full.map((x, i) => x / r.bare[i])) });
