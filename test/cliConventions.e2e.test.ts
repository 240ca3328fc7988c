// The CLI's habits, through the real bin: a typo or bad input is answered before anything is reached (two TCP
// listeners stand in for Temporal and Postgres and count connections), `--` ends our options, `--as=x` is `--as x`,
// an error is one line and a hint, `help a b` is the help of `a b`, the default workspace, shell completion.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../client/exitCodes';
import { createDb } from '../db/client';
import { workspaces } from '../db/access';
import { snapshots } from '../db/schema';
import { profileKey } from '../lib/presets';
import { createTestDatabase } from './support/db';

const bin = join(__dirname, '..', 'client', 'bin', 'snapflow.js');
const SANDBOX_ID = '9b2f6a4e-1c7d-4f0e-9a53-2b8e6c1d0f47';

/** A TCP port that accepts and drops connections, counting them: proof of whether the CLI tried to connect. */
interface Listener {
  address: string;
  connections: number;
  server: Server;
}
async function listener(): Promise<Listener> {
  const server = createServer((socket) => {
    state.connections++;
    socket.destroy();
  });
  const state: Listener = { address: '', connections: 0, server };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

let temporal: Listener;
let postgres: Listener;
let home: string;

beforeAll(async () => {
  [temporal, postgres] = await Promise.all([listener(), listener()]);
  home = mkdtempSync(join(tmpdir(), 'snapflow-cli-'));
});
afterAll(async () => {
  await Promise.all([temporal, postgres].map((l) => l && new Promise((r) => l.server.close(r))));
  if (home) rmSync(home, { recursive: true, force: true });
});
beforeEach(() => {
  temporal.connections = 0;
  postgres.connections = 0;
});

interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The bin with the listeners as Temporal and Postgres, an empty config directory, and no .env around it. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: home,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: home,
        TEMPORAL_ADDRESS: temporal.address,
        DATABASE_URL: `postgres://postgres@${postgres.address}/snapflow`,
        SNAPFLOW_CONFIG_DIR: join(home, 'config'),
        ...env,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill(), 60_000);
    child.on('error', reject).on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

const reached = () => ({ temporal: temporal.connections, postgres: postgres.connections });

test('a typo in a command fails with "did you mean" and a hint, no help text, and connects to nothing', async () => {
  const r = await cli(['snapshot', 'craete', '--name', 'a']);
  expect(r).toEqual({
    status: 2,
    stdout: '',
    stderr: "error: unknown command 'craete'\n(Did you mean create?)\n  hint: see `snapflow snapshot --help`\n",
  });
  expect(reached()).toEqual({ temporal: 0, postgres: 0 });
});

test('an unknown option is one line and a hint; with --json the same as a typed failure', async () => {
  const r = await cli(['snapshot', 'list', '--bogus']);
  expect(r).toEqual({ status: 2, stdout: '', stderr: "error: unknown option '--bogus'\n  hint: see `snapflow snapshot list --help`\n" });
  const json = await cli(['snapshot', 'list', '--bogus', '--json']);
  expect(json.status).toBe(2);
  expect(JSON.parse(json.stderr)).toEqual({
    code: 'VALIDATION_FAILED',
    message: "unknown option '--bogus'",
    field: 'bogus',
    hint: 'see `snapflow snapshot list --help`',
  });
});

test('invalid input is refused before Temporal or Postgres is reached', async () => {
  const bad = await cli(['snapshot', 'list', '--workspace', 'BAD!']);
  expect(bad.status).toBe(2);
  expect(bad.stderr).toMatch(/^VALIDATION_FAILED: workspace "BAD!" .*\n {2}hint: /);
  const job = await cli(['sandbox', 'run', 'not-a-sandbox', '--', 'true']);
  expect(job.status).toBe(2);
  expect(job.stderr).toMatch(/^VALIDATION_FAILED: sandbox id "not-a-sandbox"/);
  const limit = await cli(['snapshot', 'list', '--limit', 'ten']);
  expect(limit.status).toBe(2);
  expect(limit.stderr).toMatch(/^VALIDATION_FAILED: limit /);
  expect(reached()).toEqual({ temporal: 0, postgres: 0 });
});

test('a catalog that is down is DATABASE_UNAVAILABLE naming where and how to start it, not INTERNAL', async () => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((r) => closed.close(r)); // nothing listens there now: the connection is refused
  const r = await cli(['snapshot', 'list', '--workspace', 'ws-a'], { DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/snapflow` });
  expect(r.status).toBe(EXIT.unavailable);
  expect(r.stderr).toMatch(
    new RegExp(`^DATABASE_UNAVAILABLE: Postgres is not reachable at 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)\n {2}hint: start it`),
  );
});

test('--as=x is --as x; an --as after `--` belongs to the job, not to snapflow', async () => {
  // An actor the config refuses shows which one was taken, before anything connects.
  for (const as of [['--as=bad!'], ['--as', 'bad!']]) {
    const r = await cli(['sandbox', 'status', SANDBOX_ID, ...as]);
    expect({ as, status: r.status, stderr: r.stderr.split('\n')[0] }).toEqual({
      as,
      status: 2,
      stderr: 'CONFIG_INVALID: SNAPFLOW_ACTOR must be a user id (letters, digits, . _ @ -)',
    });
  }
  const job = await cli(['sandbox', 'run', SANDBOX_ID, '--', 'sh', '--as', 'bad!']);
  expect(job.stderr).not.toContain('SNAPFLOW_ACTOR');
  expect(postgres.connections).toBeGreaterThan(0); // it went on to check access: the actor was the default one
});

test('`help snapshot create` is the help of `snapshot create`; help is printed only when asked', async () => {
  const help = await cli(['help', 'snapshot', 'create']);
  expect(help.status).toBe(0);
  expect(help.stdout).toMatch(/^Usage: snapflow snapshot create \[options\]/);
  expect(help.stdout).toContain('--image <ref>');
  const missing = await cli(['snapshot', 'create', '--name', 'a']);
  expect(missing.status).toBe(2);
  expect(missing.stderr).not.toContain('Usage:');
  expect(missing.stderr.trim().split('\n')).toHaveLength(2);
});

test('the default workspace: SNAPFLOW_WORKSPACE, then `config set workspace`; a command needing one says how to set it', async () => {
  const none = await cli(['sandbox', 'list']);
  expect(none.status).toBe(2);
  expect(none.stderr).toBe(
    'VALIDATION_FAILED: no workspace: pass --workspace <id>\n  hint: or set a default: `snapflow config set workspace <id>` or SNAPFLOW_WORKSPACE=<id>\n',
  );

  expect(await cli(['config', 'set', 'workspace', 'demo'])).toMatchObject({ status: 0, stdout: '' });
  expect(statSync(join(home, 'config', 'config.json')).mode & 0o777).toBe(0o600);
  expect(await cli(['config', 'get', 'workspace'])).toMatchObject({ status: 0, stdout: 'demo\n' });
  expect(await cli(['config', 'get', 'workspace'], { SNAPFLOW_WORKSPACE: 'other' })).toMatchObject({ stdout: 'other\n' });
  expect(await cli(['config', 'list', '--json'])).toMatchObject({ status: 0, stdout: '{\n  "workspace": "demo"\n}\n' });
  expect(await cli(['config', 'set', 'workspace', 'Not A Slug'])).toMatchObject({ status: 2 });
  expect(await cli(['config', 'set', 'colour', 'blue'])).toMatchObject({ status: 2, stderr: expect.stringContaining('no config key') });

  // The default is what the command uses: a bad one in the variable is refused as the workspace, before connecting.
  const fromEnv = await cli(['sandbox', 'list'], { SNAPFLOW_WORKSPACE: 'BAD!' });
  expect(fromEnv.stderr).toMatch(/^VALIDATION_FAILED: workspace "BAD!"/);
  expect(reached()).toEqual({ temporal: 0, postgres: 0 });

  expect(await cli(['config', 'unset', 'workspace'])).toMatchObject({ status: 0 });
  expect(await cli(['config', 'get', 'workspace'])).toMatchObject({ status: 2 });
  writeFileSync(join(home, 'config', 'config.json'), 'not json'); // a broken file reads as empty
  expect(await cli(['config', 'list'])).toMatchObject({ status: 0, stdout: '' });
});

test('bash completion completes `snapflow …` and `npx snapflow …`, and leaves the job after `--` and other npx commands alone', async () => {
  const script = (await cli(['completion', 'bash'])).stdout;
  const complete = (words: string[]): string => {
    const r = spawnSync(
      'bash',
      [
        '--norc',
        '--noprofile',
        '-c',
        `eval "$SCRIPT"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _snapflow; echo "\${COMPREPLY[*]}"`,
      ],
      { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', SCRIPT: script } },
    );
    expect(r.stderr).toBe('');
    return r.stdout.trim();
  };
  expect(complete(['snapflow', 'snapshot', 'cr'])).toBe('create');
  expect(complete(['npx', 'snapflow', 'snapshot', 'cr'])).toBe('create');
  expect(complete(['npx', 'snap'])).toBe('snapflow');
  expect(complete(['npx', 'snapflow', 'snapshot', 'list', '--li'])).toBe('--limit');
  expect(complete(['npx', 'snapflow', 'sandbox', 'run', SANDBOX_ID, '--', '--w'])).toBe('');
  expect(complete(['npx', 'prettier', '--w'])).toBe('');
  const registered = spawnSync('bash', ['--norc', '--noprofile', '-c', 'eval "$SCRIPT"; complete -p snapflow npx'], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', SCRIPT: script },
  });
  expect(registered.stdout).toBe('complete -F _snapflow snapflow\ncomplete -F _snapflow npx\n');
});

test('snapshot list: a table with a header, --limit with a note on stderr, --all, --json the bare array; Temporal is never reached', async () => {
  const database = await createTestDatabase();
  const handle = createDb(database.url);
  try {
    await handle.db.insert(workspaces).values({ id: 'pages', plan: 'free' });
    const profile = profileKey({ runtime: 'codex', size: 'small' });
    await handle.db.insert(snapshots).values(
      ['agent-v1', 'agent-v2', 'agent-v3'].map((name, i) => ({
        workspace: 'pages',
        name,
        kind: 'image' as const,
        sourceImage: `registry.example/agent:v${i + 1}`,
        runtime: 'codex' as const,
        size: 'small',
        profileKey: profile,
        origin: 'user' as const,
        createdAt: new Date(Date.UTC(2026, 0, i + 1)),
      })),
    );
    const env = { DATABASE_URL: database.url, SNAPFLOW_WORKSPACE: 'pages' };
    const limited = await cli(['snapshot', 'list', '--limit', '2'], env);
    expect(limited).toMatchObject({ status: 0, stderr: 'showing 2 of 3 snapshots: use --limit 3 or --all for every one\n' });
    expect(limited.stdout.split('\n').map((l) => l.split(/\s+/)[0])).toEqual(['NAME', 'agent-v3', 'agent-v2', '']);
    expect(limited.stdout.split('\n')[0]).toMatch(/^NAME\s+STATUS\s+KIND\s+RUNTIME\s+SIZE\s+IMAGE$/);
    const all = await cli(['snapshot', 'list', '--all', '--json'], env);
    expect(all).toMatchObject({ status: 0, stderr: '' });
    expect((JSON.parse(all.stdout) as Array<{ name: string }>).map((r) => r.name)).toEqual(['agent-v3', 'agent-v2', 'agent-v1']);
    const jsonLimited = await cli(['snapshot', 'list', '--limit', '1', '--json'], env);
    expect((JSON.parse(jsonLimited.stdout) as unknown[]).length).toBe(1);
    expect(jsonLimited.stderr).toBe('showing 1 of 3 snapshots: use --limit 3 or --all for every one\n');
    expect(temporal.connections).toBe(0);
  } finally {
    await handle.close();
    await database.drop();
  }
});
