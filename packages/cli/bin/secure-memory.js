#!/usr/bin/env node
// The `secure-memory` command's entry: a committed file, so that npm links the command at install
// time in the repository too, before the first build has made dist/.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/bin.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('secure-memory: the command is not built yet; run `npm run build` (or `npm start`) in the repository first\n');
  process.exit(1);
}
await import(entry.href);
