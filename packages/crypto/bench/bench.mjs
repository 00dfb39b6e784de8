#!/usr/bin/env node
// Per-operation costs of @secure-memory/crypto against node:crypto with a heap key, in the same
// run, in interleaved rounds: a table and then one line of JSON on stdout (--json: the JSON only).
//
//   node bench/bench.mjs [--backend protected-memory|sodium|memguard] [--rounds N] [--json]
//
// Operations: seal and open of 100 B and 10 KiB (AES-256-GCM), and a whole envelope record: a new
// data key, a seal of 100 B under it, a wrap of it under a cached KEK. Ours: factory.createRandom,
// aead(), seal, kekAead.wrap, close. node:crypto: randomBytes(32), createCipheriv with the heap key
// for the seal and with the heap KEK for the wrap. Each round times a batch of each operation in
// turn; the figures are medians over rounds of ns per operation, and the median of per-round ratios.
// Two more rows split a record: the backend's share (createRandom + close, against randomBytes(32))
// and this package's share (aead + seal + wrap + close on an existing key).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { aead } from '@secure-memory/crypto';

// A reader that goes away (`| head`) ends the command quietly.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'protected-memory' },
    rounds: { type: 'string', default: '15' },
    json: { type: 'boolean', default: false },
  },
});
const moduleName = values.backend.startsWith('@') ? values.backend : `@secure-memory/${values.backend}`;
const { createFactory } = await import(moduleName);
const factory = createFactory();
const rounds = Number(values.rounds);

const kekBytes = randomBytes(32); // node:crypto's heap key
const kek = factory.new(Buffer.from(kekBytes));
const gcm = aead('aes-256-gcm', kek);

function nodeSeal(key, message) {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = cipher.update(message);
  cipher.final();
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

function nodeOpen(key, box) {
  const decipher = createDecipheriv('aes-256-gcm', key, box.subarray(0, 12));
  decipher.setAuthTag(box.subarray(box.length - 16));
  const out = decipher.update(box.subarray(12, box.length - 16));
  decipher.final();
  return out;
}

const small = randomBytes(100);
const large = randomBytes(10 * 1024);
const oursSmallBox = gcm.seal(small);
const oursLargeBox = gcm.seal(large);
const nodeSmallBox = nodeSeal(kekBytes, small);
const nodeLargeBox = nodeSeal(kekBytes, large);

const operations = [
  { name: 'seal 100 B', batch: 2000, ours: () => gcm.seal(small), node: () => nodeSeal(kekBytes, small) },
  { name: 'open 100 B', batch: 2000, ours: () => gcm.open(oursSmallBox), node: () => nodeOpen(kekBytes, nodeSmallBox) },
  { name: 'seal 10 KiB', batch: 500, ours: () => gcm.seal(large), node: () => nodeSeal(kekBytes, large) },
  { name: 'open 10 KiB', batch: 500, ours: () => gcm.open(oursLargeBox), node: () => nodeOpen(kekBytes, nodeLargeBox) },
  {
    // The backend's share of a record: a data key made in protected memory and closed.
    name: 'data key (createRandom + close)',
    batch: 500,
    ours: () => factory.createRandom(32).close(),
    node: () => randomBytes(32),
  },
  {
    // This package's share of a record, on a data key that already exists.
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
  {
    name: 'envelope record',
    batch: 500,
    ours: () => {
      const dataKey = factory.createRandom(32);
      const dek = aead('aes-256-gcm', dataKey);
      const record = { data: dek.seal(small), wrappedKey: gcm.wrap(dataKey) };
      dek.close();
      dataKey.close();
      return record;
    },
    node: () => {
      const dataKey = randomBytes(32);
      return { data: nodeSeal(dataKey, small), wrappedKey: nodeSeal(kekBytes, dataKey) };
    },
  },
];

function time(fn, batch) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < batch; i += 1) fn();
  return Number(process.hrtime.bigint() - start) / batch;
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
const samples = operations.map(() => ({ ours: [], node: [], ratio: [] }));
for (let round = 0; round < rounds; round += 1) {
  operations.forEach((op, i) => {
    const first = round % 2 === 0 ? 'ours' : 'node';
    const second = first === 'ours' ? 'node' : 'ours';
    const a = time(op[first], op.batch);
    const b = time(op[second], op.batch);
    const ours = first === 'ours' ? a : b;
    const node = first === 'ours' ? b : a;
    samples[i].ours.push(ours);
    samples[i].node.push(node);
    samples[i].ratio.push(ours / node);
  });
}

const results = operations.map((op, i) => {
  const s = samples[i];
  const ratios = [...s.ratio].sort((a, b) => a - b);
  return {
    operation: op.name,
    oursNs: Math.round(median(s.ours)),
    nodeHeapKeyNs: Math.round(median(s.node)),
    ratio: Number(median(s.ratio).toFixed(3)),
    ratioP25: Number(ratios[Math.floor((ratios.length - 1) * 0.25)].toFixed(3)),
    ratioP75: Number(ratios[Math.floor((ratios.length - 1) * 0.75)].toFixed(3)),
  };
});
gcm.close();
kek.close();

const report = { backend: factory.name, node: process.version, rounds, results };
if (values.json) {
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
} else {
  const rows = results.map((r) => [r.operation, String(r.oursNs), String(r.nodeHeapKeyNs), `${r.ratio} (${r.ratioP25}-${r.ratioP75})`]);
  const header = ['operation', 'ours ns/op', 'node:crypto heap key ns/op', 'ratio (p25-p75)'];
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  process.stdout.write(`backend ${factory.name}, ${process.version}, ${rounds} rounds\n${line(header)}\n${rows.map(line).join('\n')}\n\n`);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
