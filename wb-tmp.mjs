import { createFactory } from '@secure-memory/memguard';
import { createFactory as pmFactory } from '@secure-memory/protected-memory';
import { addon } from './packages/memguard/dist/native.js';
import { runFloor, threadCpuNs } from '@secure-memory/memguard/bench';
import { ACCESS_MEMGUARD, ACCESS_1 } from './packages/cli/dist/bench-floors.js';
const lib = addon();
const PAGE = 4096;
const f = createFactory({ mode: 'locked' });
const s = f.createRandom(32);
const pf = pmFactory();
const ps = pf.createRandom(32);
// bare: a guarded page made by the addon, and its own view
const base = lib.map(3 * PAGE); const inner = base + BigInt(PAGE);
lib.prepare(base, 3 * PAGE, inner, PAGE, false);
const v = new Uint8Array(lib.view(inner + BigInt(PAGE - 32), 32, 0));
lib.protect(inner, PAGE, lib.PROT_NONE);
const bare = () => { lib.protect(inner, PAGE, lib.PROT_READ); const x = v[0]; lib.protect(inner, PAGE, lib.PROT_NONE); return x; };
const read = (b) => b[0];
const N = 3000;
const r = { mg: [], pm: [], bare: [], fm: [], f1: [] };
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
for (let k = 0; k < 15; k++) {
  let t = threadCpuNs(); for (let i = 0; i < N; i++) s.withBytes(read); r.mg.push((threadCpuNs() - t) / N);
  t = threadCpuNs(); for (let i = 0; i < N; i++) ps.withBytes(read); r.pm.push((threadCpuNs() - t) / N);
  t = threadCpuNs(); for (let i = 0; i < N; i++) bare(); r.bare.push((threadCpuNs() - t) / N);
  r.fm.push(runFloor(ACCESS_MEMGUARD.script, N).cpuNs / N);
  r.f1.push(runFloor(ACCESS_1.script, N).cpuNs / N);
}
const ratio = (a, b) => med(a.map((x, i) => x / b[i]));
console.log({ mg: med(r.mg), pm: med(r.pm), bare: med(r.bare), floorMg: med(r.fm), floor1: med(r.f1), mgXfloor: ratio(r.mg, r.fm), bareXfloor: ratio(r.bare, r.fm), mgXbare: ratio(r.mg, r.bare), pmXfloor1: ratio(r.pm, r.f1) });
