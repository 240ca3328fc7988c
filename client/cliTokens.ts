// `snapflow token …` (API tokens), `snapflow login` / `logout` (where the CLI keeps the API URL and token).
import type { Command } from 'commander';
import type { Run } from './cliRun';
import { exitCodeFor } from './exitCodes';

interface CreateFlags {
  user?: string;
  workspace?: string;
  role?: string;
  expires?: string;
  operator?: boolean;
  json?: boolean;
}

const scope = (t: { operator: boolean; workspace: string | null; role: string | null }): string =>
  t.operator ? 'operator' : t.workspace ? `${t.workspace}${t.role ? ` as ${t.role}` : ''}` : 'all workspaces';

export function registerTokenCommands(program: Command, run: Run): void {
  const token = program.command('token').description('API tokens: shown once, stored hashed');
  token
    .command('create')
    .description('make a token for a user (operators for anyone, others for themselves); --operator: the first operator token')
    .option('--user <user>', 'the user the token acts as')
    .option('--workspace <id>', 'act in this workspace only')
    .option('--role <role>', 'with --workspace: at most this role there (member | admin)')
    .option('--expires <duration>', 'e.g. 30d (at most 366d)')
    .option(
      '--operator',
      'bootstrap the first operator token with direct database access (again only with SNAPFLOW_TOKEN an operator token)',
    )
    .option('--json', 'machine-readable output: {"token": …}')
    .action(async (o: CreateFlags) =>
      run(
        o.json,
        async (c) => {
          const { validationError } = await import('../lib/validation');
          if (o.operator) {
            if (!('bootstrapOperator' in c.tokens))
              throw validationError(
                'operator',
                'the operator bootstrap needs direct database access',
                'run it where DATABASE_URL is set, without SNAPFLOW_API_URL',
              );
            return c.tokens.bootstrapOperator({ user: o.user, expires: o.expires, authorisedBy: process.env.SNAPFLOW_TOKEN });
          }
          if (!o.user)
            throw validationError('user', 'a token names its user', 'pass --user <user> (or --operator for the first operator token)');
          return c.tokens.create({ user: o.user, workspace: o.workspace, role: o.role, expires: o.expires });
        },
        (made) => {
          console.log(made.token);
          console.error(`✓ token ${made.record.id} for ${made.record.user} (${scope(made.record)}); shown once: keep it now`);
        },
      ),
    );
  // --json prints {"token": …} and the record beside it (run prints the whole result object).
  token
    .command('list')
    .description('your tokens (operators: all): id, user, scope, expiry, last used; never the secret')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) =>
      run(
        o.json,
        (c) => c.tokens.list(),
        (tokens) => {
          for (const t of tokens)
            console.log(
              `${t.id}  ${t.prefix}…  ${t.user.padEnd(20)} ${scope(t).padEnd(24)} ${t.revokedAt ? 'revoked' : t.expiresAt ? `expires ${t.expiresAt}` : 'no expiry'}  last used ${t.lastUsedAt ?? 'never'}`,
            );
        },
      ),
    );
  token
    .command('revoke <id>')
    .description('revoke a token, at once and for good')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }) =>
      run(
        o.json,
        (c) => c.tokens.revoke(id),
        (t) => console.log(`✓ token ${t.id} of ${t.user} revoked`),
      ),
    );

  program
    .command('login')
    .description('keep the API URL and a token for later commands (~/.config/snapflow/credentials.json, 0600)')
    .requiredOption('--url <url>', 'the snapflow API, e.g. http://127.0.0.1:8787')
    .option('--token <token>', 'the token (default: read from stdin)')
    .option('--json', 'machine-readable output')
    .action(async (o: { url: string; token?: string; json?: boolean }) =>
      offline(
        o.json,
        async () => {
          const token = (o.token ?? (await readStdin())).trim();
          const { SnapflowApiClient } = await import('./api');
          const me = await new SnapflowApiClient({ url: o.url, token }).me(); // a token the API refuses is not kept
          const { saveCredentials } = await import('./credentials');
          return { user: me.user, url: o.url, file: saveCredentials({ url: o.url, token }) };
        },
        (r) => console.log(`✓ logged in to ${r.url} as ${r.user} (${r.file})`),
      ),
    );
  program
    .command('logout')
    .description('forget the stored API URL and token')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) =>
      offline(
        o.json,
        async () => ({ removed: (await import('./credentials')).removeCredentials() }),
        (r) => console.log(r.removed ? '✓ logged out' : 'not logged in'),
      ),
    );
}

/** login / logout need no client: the work, its result printed, a failure printed like every other one. */
async function offline<T>(json: boolean | undefined, work: () => Promise<T>, print: (result: T) => void): Promise<void> {
  try {
    const result = await work();
    if (json) console.log(JSON.stringify(result, null, 2));
    else print(result);
  } catch (err) {
    const { describeFailure } = await import('../lib/errors');
    const f = describeFailure(err);
    if (json) console.error(JSON.stringify({ code: f.code, message: f.message, field: f.field ?? null, hint: f.hint ?? null }, null, 2));
    else console.error(`${f.code}: ${f.message}${f.hint ? `\n  hint: ${f.hint}` : ''}`);
    process.exitCode = exitCodeFor(f.code);
  }
}

async function readStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}
