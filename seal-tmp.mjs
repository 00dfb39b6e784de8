import { newEnclave, newEnclaveRandom } from '@secure-memory/memguard';
import { runFloor, threadCpuNs } from '@secure-memory/memguard/bench';
import { SEAL_1MIB, OPEN_1MIB } from './packages/cli/dist/bench-floors.js';
const MiB = 1 << 20;
const src = new Uint8Array(MiB);
const N = 50;
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const r = { seal: [], floor: [], flt: [], alloc: [], open: [], ofloor: [] };
const e = newEnclaveRandom(MiB);
for (let k = 0; k < 11; k++) {
  const f0 = process.resourceUsage().minorPageFault;
  let t = threadCpuNs(); for (let i = 0; i < N; i++) newEnclave(src); r.seal.push((threadCpuNs() - t) / N);
  r.flt.push((process.resourceUsage().minorPageFault - f0) / N);
  t = threadCpuNs(); for (let i = 0; i < N; i++) { const b = Buffer.allocUnsafeSlow(MiB + 28); for (let j = 0; j < b.length; j += 4096) b[j] = 1; } r.alloc.push((threadCpuNs() - t) / N);
  r.floor.push(runFloor(SEAL_1MIB.script, N).cpuNs / N);
  t = threadCpuNs(); for (let i = 0; i < N; i++) e.open().destroy(); r.open.push((threadCpuNs() - t) / N);
  r.ofloor.push(runFloor(OPEN_1MIB.script, N).cpuNs / N);
}
console.log({ seal: med(r.seal), floor: med(r.floor), ratio: med(r.floor.map((f, i) => f / r.seal[i])), faultsPerSeal: med(r.flt), allocTouch: med(r.alloc), open: med(r.open), ofloor: med(r.ofloor), oratio: med(r.ofloor.map((f, i) => f / r.open[i])) });
