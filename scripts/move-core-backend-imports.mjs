// One-off codemod of #18 (delete it once every branch is merged): the names backend authors need
// moved from `@secure-memory/core` to `@secure-memory/core/backend`. It splits every
// `import { ... } from '@secure-memory/core'` (and `import type`) of the given files or folders, or
// of packages/, examples/ and scripts/ by default, between the two; run it again after merging a
// branch that still imports a moved name from the root. It does not touch `vi.mock(...)` calls or
// `import('@secure-memory/core')` types: the type checker names any left.
//
//   npm run build -w @secure-memory/core && node scripts/move-core-backend-imports.mjs [path...]
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const backend = new Set([
  ...Object.keys(await import('@secure-memory/core/backend')),
  // Types, which leave no runtime name.
  'IngestPlace', 'BackendModule', 'RegionLocation', 'SecretRegion', 'RegionFill', 'ResourceLimit',
]);
const IMPORT = /import(\s+type)?\s*\{([^}]*)\}\s*from\s*'@secure-memory\/core';/g;

function rewrite(text) {
  return text.replace(IMPORT, (whole, typeOnly = '', list) => {
    const specs = list.split(',').map((s) => s.trim()).filter(Boolean);
    const name = (spec) => spec.replace(/^type\s+/, '').split(/\s+as\s+/)[0];
    const moved = specs.filter((s) => backend.has(name(s)));
    if (moved.length === 0) return whole;
    const kept = specs.filter((s) => !backend.has(name(s)));
    // One line stays one line; a list over several lines stays one name a line.
    const line = (names, from) =>
      whole.includes('\n') ? `import${typeOnly} {\n${names.map((n) => `  ${n},\n`).join('')}} from '${from}';` : `import${typeOnly} { ${names.join(', ')} } from '${from}';`;
    return [...(kept.length > 0 ? [line(kept, '@secure-memory/core')] : []), line(moved, '@secure-memory/core/backend')].join('\n');
  });
}

function* files(path) {
  if (statSync(path).isDirectory()) {
    for (const entry of readdirSync(path)) if (!['node_modules', 'dist', 'build', 'prebuilds'].includes(entry)) yield* files(join(path, entry));
  } else if (/\.(ts|mts|mjs|js|cjs)$/.test(path)) yield path;
}

let changed = 0;
for (const root of process.argv.length > 2 ? process.argv.slice(2) : ['packages', 'examples', 'scripts']) {
  for (const file of files(root)) {
    const text = readFileSync(file, 'utf8');
    const next = rewrite(text);
    if (next !== text) {
      writeFileSync(file, next);
      changed += 1;
      console.log(file);
    }
  }
}
console.log(`${changed} files rewritten`);
