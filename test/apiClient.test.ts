// The published HTTP client loads none of the worker, Docker or database code: a service holding it can only call the API.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

test('snapflow/api-client (dist/client/api.js) loads without @temporalio/worker, dockerode or postgres', () => {
  const root = join(__dirname, '..');
  const loaded = execFileSync(
    process.execPath,
    [
      '-e',
      "const { SnapflowApiClient } = require('./dist/client/api.js'); new SnapflowApiClient({ url: 'http://127.0.0.1:1', token: 't' }); console.log(JSON.stringify(Object.keys(require.cache)))",
    ],
    { cwd: root, encoding: 'utf8' },
  );
  const modules = JSON.parse(loaded) as string[];
  expect(modules.some((m) => m.endsWith(join('dist', 'client', 'api.js')))).toBe(true);
  expect(modules.filter((m) => /node_modules\/(@temporalio\/worker|dockerode|postgres|drizzle-orm)\//.test(m))).toEqual([]);
});
