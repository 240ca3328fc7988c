// Compiled workers (dist/workers/*.js, as the container runs them) find the prebuilt workflow bundle at the
// package root's dist/, the same file the source workers find.
import { join } from 'node:path';
import { defaultBundlePath, packageRoot } from '../workers/options';
import { projectRoot } from '../scripts/stack';

test('the workflow bundle path is the package root’s dist/workflow-bundle.js, from source and compiled', () => {
  expect(defaultBundlePath).toBe(join(projectRoot, 'dist', 'workflow-bundle.js'));
  // scripts/test.sh compiles first: this is the module a container's `node dist/workers/host.js` loads.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const compiled = require(join(projectRoot, 'dist', 'workers', 'options.js')) as { defaultBundlePath: string };
  expect(compiled.defaultBundlePath).toBe(join(projectRoot, 'dist', 'workflow-bundle.js'));
  expect(packageRoot(join(projectRoot, 'dist', 'workers'))).toBe(projectRoot);
});
