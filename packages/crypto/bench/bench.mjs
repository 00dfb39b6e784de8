#!/usr/bin/env node
// Per-operation costs of @secure-memory/crypto against node:crypto with a heap key, in the same
// run, in interleaved rounds: a table and then one line of JSON on stdout (--json: the JSON only).
//
//   node bench/bench.mjs [--backend NAME]... [--rounds N] [--json]
//
// NAME picks targets of bench/cases.mjs by name or module (`sodium`, `slab`, `memguard (locked)`);
// by default every backend and mode runs. Operations: seal and open of 100 B and 10 KiB
// (AES-256-GCM; the key state is this package's, the same for every backend: measured once), and
// per backend and mode a whole envelope record (bench/cases.mjs: a new data key from the backend's
// createRandom, a seal of 100 B under it, a wrap of it under a cached KEK, close) against
// node:crypto's (randomBytes(32), createCipheriv with the heap keys). Two more rows split a record:
// the backend's share (createRandom + close, against randomBytes(32)) and this package's share
// (aead + seal + wrap + close on an existing key). Each round times a batch of every row, ours and
// node:crypto back to back in alternating order; the figures are medians over rounds of wall-clock
// ns per operation, the median (and quartiles) of the per-round ratios, and the median per-round
// ratio of this process's CPU time (user + system), which other work on a shared machine disturbs
// least.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { aead } from '@secure-memory/crypto';
import { BENCH_TARGETS, envelopeRecord, nodeEnvelopeRecord, nodeOpen, nodeSeal } from './cases.mjs';

// A reader that goes away (`| head`) ends the command quietly.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const { values } = parseArgs({
  options: {
    backend: { type: 'string', multiple: true },
    rounds: { type: 'string', default: '15' },
    json: { type: 'boolean', default: false },
  },
});
const wanted = values.backend ?? [];
const chosen = wanted.length === 0 ? BENCH_TARGETS : BENCH_TARGETS.filter((t) => wanted.some((w) => t.name.includes(w) || t.module === w || t.module === `@secure-memory/${w}`));
if (chosen.length === 0) {
  process.stderr.write(`no target matches ${wanted.join(', ')}; targets: ${BENCH_TARGETS.map((t) => t.name).join('; ')}\n`);
  process.exit(2);
}
const rounds = Number(values.rounds);

const kekBytes = randomBytes(32); // node:crypto's heap key
const small = randomBytes(100);
const large = randomBytes(10 * 1024);

const targets = [];
for (const target of chosen) {
  const { createFactory } = await import(target.module);
  const factory = createFactory(target.options);
  const kek = factory.new(Buffer.from(kekBytes));
  targets.push({ ...target, factory, kek, gcm: aead('aes-256-gcm', kek) });
}
const { gcm, kek } = targets[0];
const oursSmallBox = gcm.seal(small);
const oursLargeBox = gcm.seal(large);
const nodeSmallBox = nodeSeal(kekBytes, small);
const nodeLargeBox = nodeSeal(kekBytes, large);

const operations = [
  { backend: 'any', name: 'seal 100 B', batch: 2000, ours: () => gcm.seal(small), node: () => nodeSeal(kekBytes, small) },
  { backend: 'any', name: 'open 100 B', batch: 2000, ours: () => gcm.open(oursSmallBox), node: () => nodeOpen(kekBytes, nodeSmallBox) },
  { backend: 'any', name: 'seal 10 KiB', batch: 500, ours: () => gcm.seal(large), node: () => nodeSeal(kekBytes, large) },
  { backend: 'any', name: 'open 10 KiB', batch: 500, ours: () => gcm.open(oursLargeBox), node: () => nodeOpen(kekBytes, nodeLargeBox) },
  {
    // This package's share of a record, on a data key that already exists.
    backend: 'any',
    name: 'aead + seal 100 B + wrap + close',
    batch: 500,
    ours: () => {
      const dek = aead('aes-256-gcm', kek);
      const record = { data: dek.seal(small), wrappedKey: gcm.wrap(kek) };
      dek.close();
      return record;
    },
    node: () => ({ data: nodeSeal(kekBytes, small), wrappedKey: nodeSeal(kekBytes, kekBytes) }),
  },
];
for (const t of targets) {
  // The backend's share of a record: a data key made in protected memory and closed.
  operations.push({ backend: t.name, name: 'data key (createRandom + close)', batch: 200, ours: () => t.factory.createRandom(32).close(), node: () => randomBytes(32) });
  operations.push({ backend: t.name, name: 'envelope record', batch: 200, ours: () => envelopeRecord(aead, t.factory, t.gcm, small), node: () => nodeEnvelopeRecord(kekBytes, small) });
}

/** Wall-clock and CPU (user + system) nanoseconds per operation over a batch. */
function time(fn, batch) {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < batch; i += 1) fn();
  const wall = Number(process.hrtime.bigint() - start) / batch;
  const used = process.cpuUsage(cpu);
  return { wall, cpu: ((used.user + used.system) * 1000) / batch };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// Warm up, then interleave: each round runs every operation, ours then node, alternating the order.
for (const op of operations) {
  time(op.ours, op.batch);
  time(op.node, op.batch);
}
const samples = operations.map(() => ({ ours: [], node: [], ratio: [], cpuRatio: [] }));
for (let round = 0; round < rounds; round += 1) {
  operations.forEach((op, i) => {
    const first = round % 2 === 0 ? 'ours' : 'node';
    const second = first === 'ours' ? 'node' : 'ours';
    const a = time(op[first], op.batch);
    const b = time(op[second], op.batch);
    const ours = first === 'ours' ? a : b;
    const node = first === 'ours' ? b : a;
    samples[i].ours.push(ours.wall);
    samples[i].node.push(node.wall);
    samples[i].ratio.push(ours.wall / node.wall);
    samples[i].cpuRatio.push(ours.cpu / node.cpu);
  });
}

const results = operations.map((op, i) => {
  const s = samples[i];
  const ratios = [...s.ratio].sort((a, b) => a - b);
  return {
    backend: op.backend,
    operation: op.name,
    oursNs: Math.round(median(s.ours)),
    nodeHeapKeyNs: Math.round(median(s.node)),
    ratio: Number(median(s.ratio).toFixed(3)),
    ratioP25: Number(ratios[Math.floor((ratios.length - 1) * 0.25)].toFixed(3)),
    ratioP75: Number(ratios[Math.floor((ratios.length - 1) * 0.75)].toFixed(3)),
    // The same ratio in CPU time (user + system) of this process: what a shared machine's other work disturbs least.
    cpuRatio: Number(median(s.cpuRatio).toFixed(3)),
  };
});
for (const t of targets) {
  t.gcm.close();
  t.kek.close();
}

const report = { node: process.version, rounds, targets: targets.map((t) => ({ name: t.name, module: t.module, options: t.options, backend: t.factory.name })), results };
if (values.json) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  const rows = results.map((r) => [r.backend, r.operation, String(r.oursNs), String(r.nodeHeapKeyNs), `${r.ratio} (${r.ratioP25}-${r.ratioP75})`, String(r.cpuRatio)]);
  const header = ['backend', 'operation', 'ours ns/op', 'node:crypto heap key ns/op', 'ratio (p25-p75)', 'CPU-time ratio'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  process.stdout.write(`${process.version}, ${rounds} rounds\n${line(header)}\n${rows.map(line).join('\n')}\n\n`);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
