// `npm test`: lints (Biome, knip, sherif), type-checks, checks the published shape and runs every
// package's tests through nx, then always prints one closing line, `tests: N passed, N failed,
// N skipped`, counted from the vitest reports this run wrote (old reports are removed first, so
// nothing is counted twice or replayed). The exit code is non-zero when nx failed, a test failed,
// or a package wrote no report.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';

const packages = readdirSync('packages').filter((dir) => existsSync(`packages/${dir}/vitest.config.ts`));
for (const dir of packages) rmSync(`packages/${dir}/test-results.json`, { force: true });
rmSync('.test-summary.json', { force: true });

const started = Date.now();
const nx = spawnSync('npx', ['nx', 'run-many', '-t', 'lint', 'typecheck', 'check-package', 'test', '--outputStyle=stream', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { NX_DAEMON: 'false', NX_NO_CLOUD: 'true', ...process.env },
});

let passed = 0;
let failed = 0;
let skipped = 0;
const missing = [];
console.log('');
for (const dir of packages) {
  const path = `packages/${dir}/test-results.json`;
  if (!existsSync(path)) {
    missing.push(dir);
    console.log(`${dir}: no test report (its tests did not run to the end)`);
    continue;
  }
  const report = JSON.parse(readFileSync(path, 'utf8'));
  passed += report.numPassedTests;
  failed += report.numFailedTests;
  skipped += report.numPendingTests + (report.numTodoTests ?? 0);
  console.log(`${dir}: ${report.numPassedTests} passed, ${report.numFailedTests} failed`);
}
console.log(`nx exit status ${nx.status ?? nx.signal}; ${Math.round((Date.now() - started) / 1000)} s`);
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
// For CI, which adds the Node.js matrix's checks to these counts in its own closing line.
writeFileSync('.test-summary.json', `${JSON.stringify({ passed, failed, skipped, nxStatus: nx.status })}\n`);
process.exitCode = nx.status !== 0 || failed > 0 || passed === 0 || missing.length > 0 ? 1 : 0;
