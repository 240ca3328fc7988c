#!/usr/bin/env node
// `npx snapflow …`: runs the TypeScript CLI through tsx's require hook (no build step).
require('tsx/cjs');
require('../cli.ts').main();
