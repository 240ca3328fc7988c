// `snapflow workspace …` and `snapflow member …`: who may do what. Thin over the client.
import type { Command } from 'commander';
import { workspaceOption } from './cliConfig';
import type { Run } from './cliRun';
import { printTable } from './cliTable';

export function registerWorkspaceCommands(program: Command, run: Run): void {
  const workspace = program.command('workspace').description('workspaces and their plan (operators create them)');
  workspace
    .command('create <id>')
    .description('create a workspace with its first admin (operators)')
    .requiredOption('--admin <user>', 'first admin of the workspace')
    .option('--plan <plan>', 'free | paid (custom golden snapshots need paid)', 'free')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { admin: string; plan: string; json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.create({ id, plan: o.plan, admin: o.admin }),
        (w) => console.log(`✓ workspace ${w.id} (${w.plan}), admin ${o.admin}`),
      ),
    );
  workspace
    .command('plan <id> <plan>')
    .description('switch a workspace between free and paid (operators)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, plan: string, o: { json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.setPlan({ id, plan }),
        (w) => console.log(`✓ workspace ${w.id} is on the ${w.plan} plan`),
      ),
    );
  workspace
    .command('set-defaults <id>')
    .description("a workspace's sandbox defaults (admins): idle timeout and maximum lifetime")
    .option('--idle-timeout <duration>', 'stop a sandbox after this long without a job, e.g. 15m (default 15m)')
    .option('--max-lifetime <duration>', 'stop a sandbox once it has run this long, keep-alive or not, e.g. 24h (default 24h)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { idleTimeout?: string; maxLifetime?: string; json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.setDefaults({ id, idleTimeout: o.idleTimeout, maxLifetime: o.maxLifetime }),
        (w) =>
          console.log(
            `✓ workspace ${w.id}: sandboxes stop after ${w.sandboxIdleTimeoutSeconds ?? 900}s idle, ${w.sandboxMaxLifetimeSeconds ?? 86400}s of life`,
          ),
      ),
    );
  workspace
    .command('github-accounts <id>')
    .description('the GitHub accounts whose App installations the workspace may connect (setting them: operators)')
    .option(
      '--allow <account>',
      'a GitHub user or organisation login; repeat for several (replaces the list)',
      (v: string, all: string[]) => [...all, v],
      [],
    )
    .option('--none', 'allow no account (disconnects nothing, but refuses every connect)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { allow: string[]; none?: boolean; json?: boolean }) =>
      run(
        o.json,
        (c) => (o.allow.length || o.none ? c.workspaces.setGithubAccounts({ id, allow: o.allow }) : c.workspaces.githubAccounts(id)),
        (r) =>
          console.log(
            r.accounts.length
              ? `${r.workspace} may connect installations of ${r.accounts.join(', ')}`
              : `${r.workspace} may connect no GitHub account`,
          ),
      ),
    );
  workspace
    .command('list')
    .description('every workspace and its plan')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.list(),
        (rows) =>
          printTable(
            ['WORKSPACE', 'PLAN'],
            rows.map((w) => [w.id, w.plan]),
            'no workspaces',
          ),
      ),
    );
  workspace
    .command('audit <id>')
    .description('who did what, newest first (admins)')
    .option('--limit <n>', 'entries', (v) => Number(v), 50)
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { limit: number; json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.audit(id, o.limit),
        (rows) =>
          printTable(
            ['TIME', 'DECISION', 'ACTOR', 'ACTION', 'TARGET', 'REASON'],
            rows.map((e) => [e.createdAt.toISOString(), e.decision, e.actor, e.action, e.target, e.decision === 'denied' ? e.reason : '']),
            `no audit entries for ${id}`,
          ),
      ),
    );

  const member = program.command('member').description("a workspace's members and their role (admins manage them)");
  member
    .command('add <user>')
    .description('add a member, or change their role')
    .addOption(workspaceOption())
    .option('--role <role>', 'admin | member', 'member')
    .option('--json', 'machine-readable output')
    .action(async (user: string, o: { workspace: string; role: string; json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.addMember({ workspace: o.workspace, user, role: o.role }),
        (m) => console.log(`✓ ${m.userId} is ${m.role} of ${m.workspace}`),
      ),
    );
  member
    .command('remove <user>')
    .description('remove a member from the workspace')
    .addOption(workspaceOption())
    .option('--json', 'machine-readable output')
    .action(async (user: string, o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.removeMember({ workspace: o.workspace, user }),
        () => console.log(`✓ ${user} removed from ${o.workspace}`),
      ),
    );
  member
    .command('list')
    .description('members of a workspace and their role')
    .addOption(workspaceOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (c) => c.workspaces.members(o.workspace),
        (rows) =>
          printTable(
            ['USER', 'ROLE'],
            rows.map((m) => [m.userId, m.role]),
            `no members in ${o.workspace}`,
          ),
      ),
    );
}
