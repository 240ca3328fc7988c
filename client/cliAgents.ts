// `snapflow agent …`: agents and the rollout of a snapshot to them. Thin wrappers over the client.
import type { Command } from 'commander';
import { wholeNumber } from '../lib/validation/numbers';
import type { RolloutResult, RolloutStatus } from '../workflows';
import { EXIT } from './exitCodes';
import { workspaceOption } from './cliConfig';
import type { Run } from './cliRun';
import { printTable } from './cliTable';

type Ref = { workspace: string; snapshot: string; json?: boolean };

function describe(s: RolloutStatus): string {
  const health = s.health.map((h) => `${h.agent} ${h.ok ? 'ok' : 'failed'}${h.detail ? ` (${h.detail})` : ''}`).join(', ');
  return [
    `${s.phase}${s.paused ? ' (paused)' : ''}`,
    `  canary:  ${s.canary.join(', ') || '—'}`,
    `  moved:   ${s.moved.join(', ') || '—'}`,
    `  pending: ${s.pending.join(', ') || '—'}`,
    ...(s.already.length ? [`  already: ${s.already.join(', ')}`] : []),
    ...(s.movedBack.length ? [`  moved back: ${s.movedBack.join(', ')}`] : []),
    ...(health ? [`  health:  ${health}`] : []),
    ...(s.reason ? [`  reason:  ${s.reason}`] : []),
  ].join('\n');
}

function outcome(r: RolloutResult): string {
  const mark = r.status === 'completed' ? '✓' : '!';
  return `${mark} rollout ${r.status}: ${r.moved.length} moved${r.movedBack.length ? `, ${r.movedBack.length} moved back (${r.movedBack.join(', ')})` : ''}${r.already.length ? `, ${r.already.length} already on it` : ''}${r.reason ? `\n  reason: ${r.reason}` : ''}`;
}

export function registerAgentCommands(program: Command, run: Run): void {
  const agent = program.command('agent').description('agents: which snapshot each runs on, and rollouts with a canary');

  agent
    .command('create')
    .description('create an agent on an active snapshot of the workspace (or a system one)')
    .addOption(workspaceOption())
    .requiredOption('--name <name>', 'agent name, e.g. support-bot')
    .requiredOption('--snapshot <name>', 'snapshot it runs on')
    .option(
      '--health-command <command>',
      'what a canary of this agent runs to prove it healthy (in sh -c); default: the entrypoint stays up',
    )
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; name: string; snapshot: string; healthCommand?: string; json?: boolean }) =>
      run(
        o.json,
        (client) =>
          client.agents.create({ ...o, healthCommand: o.healthCommand === undefined ? undefined : ['sh', '-c', o.healthCommand] }),
        (a) => console.log(`✓ agent ${a.name} in ${a.workspace} runs on ${o.snapshot} (${a.snapshotId})`),
      ),
    );

  agent
    .command('list')
    .description('agents of a workspace and the snapshot each runs on')
    .addOption(workspaceOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.agents.list({ workspace: o.workspace }),
        (rows) =>
          printTable(
            ['AGENT', 'SNAPSHOT', 'SNAPSHOT ID', 'PREVIOUS'],
            rows.map((a) => [
              a.name,
              a.snapshotName,
              a.snapshotId,
              a.previousSnapshotId ? `${a.previousSnapshotName ?? ''} (${a.previousSnapshotId})` : '',
            ]),
            `no agents in ${o.workspace}`,
          ),
      ),
    );

  agent
    .command('rollout')
    .description('move agents to a snapshot: the canary first, then batches once it is healthy')
    .addOption(workspaceOption())
    .requiredOption('--snapshot <name>', 'snapshot to roll out')
    .option('--agents <names>', 'comma-separated agent names, in rollout order (the first are the canary)')
    .option('--all', 'every agent of the workspace')
    .option('--canary <n>', 'agents moved and checked first', wholeNumber)
    .option('--batch <n>', 'agents moved per batch after a healthy canary', wholeNumber)
    .option('--health-timeout <duration>', 'how long to wait for the canary health, e.g. 10m (silence rolls back)')
    .option(
      '--auto',
      'check the canary itself: a sandbox of the snapshot keeps its entrypoint up and runs the health command of each canary agent',
    )
    .option('--wait', 'follow the rollout and print its result')
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        workspace: string;
        snapshot: string;
        agents?: string;
        all?: boolean;
        canary?: number;
        batch?: number;
        healthTimeout?: string;
        auto?: boolean;
        wait?: boolean;
        json?: boolean;
      }) =>
        run(
          o.json,
          async (client) => {
            const { validationError } = await import('../lib/validation');
            if (Boolean(o.all) === (o.agents !== undefined))
              throw validationError(
                'agents',
                o.all ? 'pass either --agents or --all, not both' : 'say which agents: --agents a,b,c or --all',
                'e.g. --agents support-bot,triage-bot',
              );
            const agents = o.all ? ('all' as const) : o.agents!.split(',').map((n) => n.trim());
            const started = await client.agents.rollout({
              workspace: o.workspace,
              snapshot: o.snapshot,
              agents,
              canary: o.canary,
              batchSize: o.batch,
              healthTimeout: o.healthTimeout,
              auto: o.auto,
            });
            const progress =
              o.wait && !o.json
                ? (s: RolloutStatus) =>
                    console.error(`… ${s.phase}${s.paused ? ' (paused)' : ''}: ${s.moved.length} moved, ${s.pending.length} pending`)
                : undefined;
            if (!o.json) console.error(`started rollout ${started.workflowId}\n  ${client.uiLink(started.workflowId, started.runId)}`);
            return { ...started, result: o.wait ? await client.agents.wait(o, progress) : undefined };
          },
          (r) => {
            if (r.result) console.log(outcome(r.result));
            else console.log(`  follow it: snapflow agent rollout-status --workspace ${o.workspace} --snapshot ${o.snapshot}`);
          },
          (r) => (r.result && r.result.status !== 'completed' ? EXIT.failed : EXIT.ok),
        ),
    );

  agent
    .command('rollout-status')
    .description('phase, canary, moved and pending agents of a rollout')
    .addOption(workspaceOption())
    .requiredOption('--snapshot <name>', 'snapshot being rolled out')
    .option('--json', 'machine-readable output')
    .action(async (o: Ref) =>
      run(
        o.json,
        (client) => client.agents.status(o),
        (s) => console.log(describe(s)),
      ),
    );

  for (const [verb, help] of [
    ['pause', 'hold the rollout before its next batch'],
    ['resume', 'continue a paused rollout'],
    ['abort', 'stop the rollout and move every agent it moved back'],
  ] as const) {
    agent
      .command(verb)
      .description(help)
      .addOption(workspaceOption())
      .requiredOption('--snapshot <name>', 'snapshot being rolled out')
      .option('--reason <text>', 'why, for the status and the audit trail')
      .option('--json', 'machine-readable output')
      .action(async (o: Ref & { reason?: string }) =>
        run(
          o.json,
          (client) => client.agents[verb](o),
          (s) => console.log(`✓ ${verb}: the rollout of ${o.snapshot} in ${o.workspace} is now\n${describe(s)}`),
        ),
      );
  }

  agent
    .command('health')
    .description("report a canary agent's health on the new snapshot")
    .addOption(workspaceOption())
    .requiredOption('--snapshot <name>', 'snapshot being rolled out')
    .requiredOption('--agent <name>', 'the canary agent')
    .option('--ok', 'the agent is healthy')
    .option('--failed', 'the agent is not healthy (the canary is moved back)')
    .option('--detail <text>', 'what was seen')
    .option('--json', 'machine-readable output')
    .action(async (o: Ref & { agent: string; ok?: boolean; failed?: boolean; detail?: string }) =>
      run(
        o.json,
        async (client) => {
          const { validationError } = await import('../lib/validation');
          if (Boolean(o.ok) === Boolean(o.failed))
            throw validationError(
              'ok',
              o.ok ? 'pass either --ok or --failed, not both' : 'say how the agent is: --ok or --failed',
              'e.g. --ok',
            );
          return client.agents.reportHealth({
            workspace: o.workspace,
            snapshot: o.snapshot,
            agent: o.agent,
            ok: Boolean(o.ok),
            detail: o.detail,
          });
        },
        (s) => console.log(`✓ health of ${o.agent} recorded\n${describe(s)}`),
      ),
    );
}
