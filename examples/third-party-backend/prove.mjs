// Proves the third-party backend with the testkit, from outside the process.
//
//   node examples/third-party-backend/prove.mjs
//
// In a vitest suite the same is one line:
//   describeConformance({ name: 'mine', module: new URL('./my-backend.mjs', import.meta.url).href });
import { runConformance } from '@secure-memory/testkit';

const report = await runConformance(
  { module: new URL('./my-backend.mjs', import.meta.url).href },
  (step) => process.stderr.write(`  ${step}\n`),
);
for (const [flag, verdict] of Object.entries(report.guarantees)) {
  console.log(`${flag.padEnd(22)} ${verdict.status.padEnd(9)} ${verdict.detail}`);
}
console.log(`${report.backend}: ${report.ok ? 'ok' : 'NOT OK'} (contract ${report.contract.passed}/${report.contract.passed + report.contract.failed}, bad inputs ${report.badInputs.passed}/${report.badInputs.passed + report.badInputs.failed})`);
process.exitCode = report.ok ? 0 : 1;
