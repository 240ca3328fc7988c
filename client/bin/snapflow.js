#!/usr/bin/env node
// `npx snapflow …`: the compiled CLI (dist/, written by `npm run build`; `npm ci` and `npm pack` build it).
const path = require('node:path');

let cli;
try {
  cli = require(path.join(__dirname, '..', '..', 'dist', 'client', 'cli.js'));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(path.join('dist', 'client', 'cli.js'))) {
    console.error('snapflow is not built: run `npm run build` in ' + path.join(__dirname, '..', '..'));
    process.exit(1);
  }
  throw err;
}
cli.main();
