// Bundles workflow code once, so workers start fast and every worker runs the same bundle.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { defaultBundlePath } from '../workers/options';

export interface BundleOptions {
  /**
   * Chaos only (a commit-then-stall run): the 30 s start-to-close of the short calls becomes this, so each stall
   * waits out a shorter deadline (workers/stallWorkflow.ts). Never set for a bundle the product runs.
   */
  stallTimeoutMs?: number;
}

export async function bundleWorkflows(outFile = defaultBundlePath, opts: BundleOptions = {}): Promise<string> {
  mkdirSync(dirname(outFile), { recursive: true });
  const interceptors: string[] = [];
  if (opts.stallTimeoutMs !== undefined) {
    // The bundle registers what an interceptor module exports: one that passes the number on.
    const module = join(dirname(outFile), 'stall-timeouts.js');
    const source = JSON.stringify(require.resolve('../workers/stallWorkflow'));
    writeFileSync(module, `exports.interceptors = require(${source}).shortCallTimeouts(${Math.round(opts.stallTimeoutMs)});\n`);
    interceptors.push(module);
  }
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    workflowInterceptorModules: interceptors,
    logger: quietLogger,
  });
  writeFileSync(outFile, code);
  return outFile;
}

const quiet = (): void => undefined;
const quietLogger = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: console.warn, error: console.error };

if (require.main === module) {
  bundleWorkflows(process.argv[2]).then(
    (file) => console.log(`workflow bundle written: ${file}`),
    (err: Error) => (console.error(`✗ bundling workflows failed: ${err.message}`), process.exit(1)),
  );
}
