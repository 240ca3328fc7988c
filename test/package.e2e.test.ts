// The package as a user gets it: `npm pack`, installed from the tarball in an empty directory outside the
// repository, then the snapflow bin and the typed client used from there. Needs the npm registry (dependencies).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../scripts/stack';

const root = join(__dirname, '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
let dir: string;
let app: string;
let tarball: string;

function sh(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number },
): SpawnSyncReturns<string> {
  return spawnSync(command, args, { encoding: 'utf8', timeout: 60_000, ...options, env: options.env ?? process.env });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'snapflow-package-'));
  // `npm pack` runs `prepare` (the build) first.
  const pack = sh('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: root, timeout: 300_000 });
  expect({ status: pack.status, stderr: pack.stderr }).toMatchObject({ status: 0 });
  tarball = join(dir, pack.stdout.trim().split('\n').pop()!);
  app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'snapflow-consumer', private: true }));
  const install = sh('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], {
    cwd: app,
    timeout: 600_000,
  });
  expect({ status: install.status, stderr: install.stderr }).toMatchObject({ status: 0 });
}, 900_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball holds the compiled code, the migrations, the bin and the README; no tests, no TypeScript sources', () => {
  const files = sh('tar', ['-tzf', tarball], { cwd: dir }).stdout.split('\n');
  expect(files).toEqual(
    expect.arrayContaining([
      'package/dist/client/cli.js',
      'package/dist/client/index.d.ts',
      'package/dist/db/migrate.js',
      'package/dist/db/migrations/meta/_journal.json',
      'package/dist/db/migrations/0000_init.sql',
      'package/client/bin/snapflow.js',
      'package/README.md',
    ]),
  );
  expect(
    files.filter((f) => f.startsWith('package/test/') || f.startsWith('package/bench/') || /^package\/(?!dist\/).*\.ts$/.test(f)),
  ).toEqual([]);
});

test('npx snapflow doctor runs from the install: one line per check, ✗ for the missing stack, exit 1, no stack trace', async () => {
  // Nothing listens on these ports: the checks that need Temporal or Postgres fail, readably.
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}`,
    DATABASE_URL: `postgres://postgres@127.0.0.1:${await freePort()}/snapflow`,
  };
  const doctor = sh('npx', ['--no-install', 'snapflow', 'doctor'], { cwd: app, env });
  expect(doctor.status).toBe(1);
  expect(doctor.stdout).toMatch(/^✓ config/m);
  expect(doctor.stdout).toMatch(/^✗ postgres .*not reachable/m);
  expect(doctor.stdout).toMatch(/^✗ temporal /m);
  expect(doctor.stderr).not.toMatch(/\n\s+at /);

  const help = sh('npx', ['--no-install', 'snapflow', '--version'], { cwd: app, env });
  expect({ status: help.status, stdout: help.stdout.trim() }).toEqual({ status: 0, stdout: version });
});

test("require('snapflow') is the typed client", () => {
  const cjs = sh(process.execPath, ['-e', "process.stdout.write(typeof require('snapflow').SnapflowClient)"], { cwd: app });
  expect(cjs.stdout).toBe('function');

  writeFileSync(
    join(app, 'check.ts'),
    "import { SnapflowClient } from 'snapflow';\nexport const connect: typeof SnapflowClient.connect = SnapflowClient.connect;\n",
  );
  const tsc = sh(
    process.execPath,
    [
      require.resolve('typescript/bin/tsc'),
      '--noEmit',
      '--strict',
      '--skipLibCheck',
      '--module',
      'node16',
      '--moduleResolution',
      'node16',
      'check.ts',
    ],
    { cwd: app },
  );
  expect({ status: tsc.status, out: tsc.stdout }).toEqual({ status: 0, out: '' });
});
