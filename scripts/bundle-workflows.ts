// Bundles workflow code once, so workers start fast and every worker runs the same bundle.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { defaultBundlePath } from '../workers/options';

export async function bundleWorkflows(outFile = defaultBundlePath): Promise<string> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: quietLogger });
  mkdirSync(dirname(outFile), { recursive: true });
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
