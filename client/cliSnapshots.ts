// `snapflow snapshot …` and `snapflow github …`: thin wrappers over the client. Every command takes --json.
import type { Command } from 'commander';
import { wholeNumber } from '../lib/validation/numbers';
import type { Snapshot } from '../catalog/snapshots';
import { SYSTEM_SCOPE } from '../lib/ids';
import { workspaceOption } from './cliConfig';
import type { Run } from './cliRun';
import { printTable } from './cliTable';

function row(s: Snapshot): string {
  const error = s.status === 'failed' ? `  ${s.errorCode}: ${s.errorMessage}` : '';
  return `${s.name.padEnd(28)} ${s.status.padEnd(8)} ${s.kind.padEnd(7)} ${s.runtime.padEnd(6)} ${s.size.padEnd(7)} ${s.sourceImage ?? ''}${error}`;
}

interface CreateFlags {
  name: string;
  image: string;
  entrypoint: string;
  runtime: string;
  size: string;
  workspace: string;
  allowFloatingTag?: boolean;
  replace?: boolean;
  rollout?: boolean;
  canary?: number;
  batch?: number;
  healthTimeout?: string;
  autoHealth?: boolean;
  wait?: boolean;
  json?: boolean;
}

export function registerSnapshotCommands(program: Command, run: Run): void {
  const snapshot = program.command('snapshot').description('image snapshots');

  snapshot
    .command('create')
    .description('create a snapshot from a Docker image (returns at once in `pending` unless --wait)')
    .requiredOption('--name <name>', 'unique, versioned name, e.g. agent-base-v3')
    .requiredOption('--image <ref>', 'image reference, e.g. ghcr.io/org/image:v1')
    .option('--entrypoint <path>', 'entrypoint inside the image', '/app/start.sh')
    .requiredOption('--runtime <runtime>', 'codex | pi')
    .requiredOption('--size <size>', 'small | medium | large')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--allow-floating-tag', 'accept `latest` or no tag (not recommended: tags should be stable)')
    .option('--replace', 'if the name exists with another spec, create the next version and move defaults, pins and agents to it')
    .option('--rollout', "with --replace: move the old snapshot's agents by a canary rollout instead of all at once")
    .option('--canary <n>', 'with --rollout: agents moved and checked first (default 1)', wholeNumber)
    .option('--batch <n>', 'with --rollout: agents moved per batch after a healthy canary', wholeNumber)
    .option('--health-timeout <duration>', 'with --rollout: how long to wait for the canary health, e.g. 10m')
    .option('--auto-health', 'with --rollout: check the canary in a sandbox of the snapshot instead of waiting for `agent health`')
    .option('--wait', 'follow progress (resolve → pull → verify → boot → store) until the final status')
    .option('--json', 'machine-readable output')
    .action(async (o: CreateFlags) =>
      run(
        o.json,
        async (client) => {
          const rolloutFlags =
            o.canary !== undefined || o.batch !== undefined || o.healthTimeout !== undefined || o.autoHealth !== undefined;
          const rollout =
            o.rollout || rolloutFlags
              ? { canary: o.canary, batchSize: o.batch, healthTimeout: o.healthTimeout, auto: o.autoHealth }
              : undefined;
          const { validationError } = await import('../lib/validation');
          if (rolloutFlags && !o.rollout)
            throw validationError(
              'rollout',
              '--canary, --batch, --health-timeout and --auto-health go with --rollout',
              'add --rollout (and --replace)',
            );
          const created = await client.snapshots.create({
            workspace: o.workspace,
            name: o.name,
            image: o.image,
            entrypoint: o.entrypoint,
            runtime: o.runtime,
            size: o.size,
            allowFloatingTag: o.allowFloatingTag,
            replace: o.replace,
            rollout,
          });
          const link = created.workflowId ? client.uiLink(created.workflowId) : undefined;
          if (!o.wait) return { ...created, uiLink: link };
          if (!o.json) console.error(`${created.reused ? 'reusing' : 'creating'} ${created.name} (${created.snapshotId}) — ${link}`);
          const result = await client.snapshots.wait(
            created,
            o.json ? undefined : (step, message) => console.error(`  … ${step}: ${message}`),
          );
          return { ...created, ...result, uiLink: link };
        },
        (r) => {
          const moves = o.rollout
            ? 'defaults and pins move when it is active, agents by a rollout'
            : 'defaults, pins and agents move when it is active';
          const replaced = r.replaces ? ` (replaces ${r.replaces}; ${moves})` : '';
          const rollout =
            'rollout' in r && r.rollout
              ? `\n  rollout of ${r.rollout.agents.join(', ')}: snapflow agent rollout-status --workspace ${o.workspace} --snapshot ${r.name}`
              : '';
          console.log(
            `${r.status === 'active' ? '✓' : '…'} ${r.name} ${r.status}${r.reused ? ' (existing snapshot with the same spec)' : ''}${replaced}\n  id ${r.snapshotId}\n  ${r.uiLink ?? ''}${rollout}`,
          );
        },
      ),
    );

  snapshot
    .command('list')
    .description('snapshots in a workspace')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--status <status>', 'pending | active | failed | deleting')
    .option('--runtime <runtime>', 'codex | pi')
    .option('--size <size>', 'small | medium | large')
    .option('--kind <kind>', 'image | session | golden')
    .option('--limit <n>', 'show at most this many, newest first', wholeNumber, 100)
    .option('--all', 'show every one (no limit)')
    .option('--json', 'machine-readable output: the array of snapshots')
    .action(
      async (o: {
        workspace: string;
        status?: string;
        runtime?: string;
        size?: string;
        kind?: string;
        limit: number;
        all?: boolean;
        json?: boolean;
      }) =>
        run(
          o.json,
          async (client) => {
            const { limit, all, json: _json, ...filter } = o;
            const page = await client.snapshots.page({ ...filter, limit: all ? undefined : limit });
            // The note goes to stderr, so the array on stdout stays what jq reads.
            if (page.total > page.snapshots.length)
              console.error(
                `showing ${page.snapshots.length} of ${page.total} snapshots: use --limit ${page.total} or --all for every one`,
              );
            return page.snapshots;
          },
          (rows) =>
            printTable(
              ['NAME', 'STATUS', 'KIND', 'RUNTIME', 'SIZE', 'IMAGE'],
              rows.map((s) => [
                s.name,
                s.status,
                s.kind,
                s.runtime,
                s.size,
                `${s.sourceImage ?? ''}${s.status === 'failed' ? `  ${s.errorCode}: ${s.errorMessage}` : ''}`,
              ]),
              `no snapshots in ${o.workspace}`,
            ),
        ),
    );

  snapshot
    .command('get <name>')
    .alias('show')
    .description("one snapshot with its events, failure reason (the failing step and its log's last lines) and Temporal UI link")
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--json', 'machine-readable output')
    .action(async (name: string, o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.snapshots.get({ workspace: o.workspace, name }),
        ({ snapshot: s, events, uiLink, failedStep, logTail }) => {
          console.log(row(s));
          console.log(`  id ${s.id}  profile ${s.profileKey}  entrypoint ${s.entrypoint}`);
          if (s.resolvedDigest) console.log(`  digest ${s.resolvedDigest}\n  stored ${s.storedRef}`);
          if (uiLink) console.log(`  run ${uiLink}`);
          for (const e of events) console.log(`  ${e.createdAt.toISOString()}  ${e.type.padEnd(14)} ${e.message ?? ''}`);
          if (failedStep) console.log(`  failed in step ${failedStep}`);
          if (logTail) console.log(`  last lines of its log (snapflow snapshot logs ${s.name}):\n${logTail.replace(/^/gm, '    ')}`);
        },
      ),
    );

  snapshot
    .command('logs <name>')
    .description("a snapshot's build log: each step, the pull's and upload's output, and how it ended")
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--follow', 'keep streaming while it builds')
    .action(async (name: string, o: { workspace: string; follow?: boolean }) =>
      run(
        false,
        async (client) => {
          const stop = new AbortController();
          process.once('SIGINT', () => stop.abort());
          for await (const chunk of client.snapshots.logs({ workspace: o.workspace, name, follow: o.follow, signal: stop.signal }))
            process.stdout.write(chunk.data);
        },
        () => undefined,
      ),
    );

  snapshot
    .command('delete <name>')
    .description('delete a snapshot and its stored image; refused while a default, pin or sandbox uses it')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--json', 'machine-readable output')
    .action(async (name: string, o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.snapshots.delete({ workspace: o.workspace, name }),
        (r) => console.log(`✓ deleted ${name} (${r.snapshotId})`),
      ),
    );

  snapshot
    .command('prune')
    .description('list snapshots unused for a while; deletes them only with --yes')
    .requiredOption('--unused-for <days>', 'e.g. 14d', (v) => wholeNumber(v.replace(/d$/, '')))
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--yes', 'really delete them (default: dry run)')
    .option('--json', 'machine-readable output')
    .action(async (o: { unusedFor: number; workspace: string; yes?: boolean; json?: boolean }) =>
      run(
        o.json,
        (client) => client.snapshots.prune({ workspace: o.workspace, unusedForDays: o.unusedFor, yes: o.yes }),
        (r) => {
          if (r.candidates.length === 0) return console.log(`nothing in ${o.workspace} unused for ${o.unusedFor}d`);
          for (const c of r.candidates)
            console.log(
              `${r.dryRun ? 'would delete' : 'deleted'} ${c.name} (${c.status}, unchanged since ${c.updatedAt.toISOString().slice(0, 10)})`,
            );
          if (r.dryRun) console.log('dry run: pass --yes to delete them');
        },
      ),
    );

  const github = program.command('github').description('GitHub connection of a workspace (for private GHCR images)');
  const connection = (c: {
    workspace: string;
    installationId: number;
    account: string | null;
    status: string;
    validatedAt: string | null;
  }): void =>
    console.log(
      `${c.status === 'connected' ? '✓' : '✗'} ${c.workspace}: installation ${c.installationId}${c.account ? ` (${c.account})` : ''} ${c.status}, validated ${c.validatedAt ?? 'never'}`,
    );
  github
    .command('connect')
    .description('connect the workspace to a GitHub App installation (validated before it is stored)')
    .requiredOption('--installation-id <n>', 'GitHub App installation id', wholeNumber)
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--json', 'machine-readable output')
    .action(async (o: { installationId: number; workspace: string; json?: boolean }) =>
      run(o.json, (client) => client.validateGithub({ workspace: o.workspace, installationId: o.installationId }), connection),
    );
  for (const [name, description] of [
    ['validate', 'check the stored installation with GitHub now'],
    ['reconnect', 're-validate an expired connection'],
  ] as const) {
    github
      .command(name)
      .description(description)
      .addOption(workspaceOption(SYSTEM_SCOPE))
      .option('--json', 'machine-readable output')
      .action(async (o: { workspace: string; json?: boolean }) =>
        run(o.json, (client) => client.validateGithub({ workspace: o.workspace }), connection),
      );
  }
  github
    .command('status')
    .description('the stored connection, without calling GitHub')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.githubStatus({ workspace: o.workspace }),
        (c) =>
          c
            ? connection(c)
            : console.log(
                `✗ ${o.workspace}: not connected — run snapflow github connect --installation-id <id> --workspace ${o.workspace}`,
              ),
      ),
    );
}
