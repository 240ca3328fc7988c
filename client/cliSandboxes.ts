// `snapflow sandbox …` and `snapflow issue pin|unpin`: thin wrappers over the client.
import type { Command } from 'commander';
import { describeFork, type RestoreDecision } from '../lib/restoreOrder';
import type { CreateSandboxInput } from './sandboxes';
import type { SandboxStatus } from '../workflows/contracts/sandbox';
import { printTable } from './cliTable';
import { jobExitCode } from './exitCodes';
import { workspaceOption } from './cliConfig';
import type { Run } from './cliRun';

const named = (id: string, name?: string): string => (name ? `${name} (${id})` : id);

/** Where a start came from, with the snapshot's name beside its id. */
function startedFrom(d: RestoreDecision): string {
  if (d.source === 'running') return `the running container on ${d.hostId}`;
  if (d.source !== 'base' && d.forkedFrom) return `${describeFork(d.forkedFrom)}, image ${d.imageRef}`;
  if (d.source !== 'base') return `${d.source} snapshot ${named(d.snapshotId, d.name)} (${d.imageRef})`;
  return d.snapshotId ? `fresh base image snapshot ${named(d.snapshotId, d.name)} (${d.imageRef})` : `fresh base image ${d.imageRef}`;
}

function explain(d: RestoreDecision): string {
  const chosen = d.source === 'running' ? `reuse the running container on ${d.hostId}` : startedFrom(d);
  const base = d.base
    ? [
        `  base: ${d.base.agent ? `agent ${d.base.agent} on ` : ''}image snapshot ${named(d.base.snapshotId, d.base.name)}, entrypoint ${d.base.entrypoint}, profile ${d.profileKey ?? ''}`,
      ]
    : [];
  return [`starts from: ${chosen}`, ...base, ...d.skipped.map((s) => `  skipped ${s.step}: ${s.reason} — ${s.detail}`)].join('\n');
}

/** `sandbox status` for a person: one fact a line (`--json` has the whole object). */
function describeStatus(s: SandboxStatus): string {
  const when = (ms: number): string => new Date(ms).toISOString();
  return [
    `sandbox ${s.sandboxId}: ${s.state}${s.hostId ? ` on ${s.hostId}` : ''}${s.machines ? ' (vm)' : ''}`,
    `  jobs:    ${s.jobs}${s.currentJob ? `, running job ${s.currentJob.sequence}: ${s.currentJob.command.join(' ')}` : ''}`,
    `  session: ${s.latestSessionSnapshotId ?? 'none yet'}`,
    ...(s.lastSession?.sessionError ? [`  last save failed (job ${s.lastSession.sequence}): ${s.lastSession.sessionError}`] : []),
    ...(s.startedAt ? [`  running since ${when(s.startedAt)}`] : []),
    ...(s.lastStart ? [`  started from ${startedFrom(s.lastStart)}`] : []),
    ...(s.lastStop ? [`  stopped on its own: ${s.lastStop.reason} at ${when(s.lastStop.at)}`] : []),
  ].join('\n');
}

export function registerSandboxCommands(program: Command, run: Run): void {
  const sandbox = program.command('sandbox').description('sandboxes: one entity workflow each; jobs, session snapshots, promote');

  sandbox
    .command('create')
    .description('create a sandbox; it starts by the restore order (pinned golden → workspace default → system default → base)')
    .addOption(workspaceOption())
    .option('--agent <name>', "start from this agent's image snapshot and run its entrypoint (follows the agent's rollouts)")
    .option('--snapshot <name>', 'start from this image snapshot and run its entrypoint')
    .option('--class <class>', 'vm | container (snapshots exist only for vm)', 'vm')
    .option('--size <size>', "small | medium | large (default with --agent/--snapshot: the snapshot's)")
    .option('--runtime <runtime>', "codex | pi (default with --agent/--snapshot: the snapshot's)")
    .option('--keep-alive', 'keep the container running between jobs')
    .option('--issue <key>', 'issue the sandbox works on (its pinned golden snapshot comes first)')
    .option('--idle-timeout <duration>', "stop after this long without a job, e.g. 15m (default: the workspace's, else 15m)")
    .option('--max-lifetime <duration>', "stop once running this long, keep-alive or not, e.g. 8h (default: the workspace's, else 24h)")
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        workspace: string;
        agent?: string;
        snapshot?: string;
        class: string;
        size?: string;
        runtime?: string;
        keepAlive?: boolean;
        issue?: string;
        idleTimeout?: string;
        maxLifetime?: string;
        json?: boolean;
      }) =>
        run(
          o.json,
          (client) => client.sandboxes.create(o as CreateSandboxInput),
          (r) =>
            console.log(
              `✓ sandbox ${r.sandboxId} ${r.status.state} on ${r.status.hostId}\n${r.status.lastStart ? explain(r.status.lastStart) : ''}`,
            ),
        ),
    );

  sandbox
    .command('start <id>')
    .description('resume a stopped sandbox by the restore order; --explain only prints the decision')
    .option('--explain', 'print where it would start and why each earlier step is skipped, change nothing')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { explain?: boolean; json?: boolean }) =>
      run(
        o.json,
        async (client) => (o.explain ? await client.sandboxes.explain(id) : (await client.sandboxes.resume(id)).lastStart!),
        (d) => console.log(explain(d)),
      ),
    );

  sandbox
    .command('run <id> <command...>')
    .description(
      "run a job (a command) in a sandbox, streaming its output; a stopped sandbox starts again first; a vm sandbox saves a session snapshot when it succeeds; exits with the job's exit code",
    )
    .option('--workdir <dir>', 'working directory inside the sandbox')
    .option('--timeout <duration>', "kill the job's processes past this long, e.g. 10m (default 30m)")
    .option('--json', 'machine-readable output')
    .action(async (id: string, command: string[], o: { workdir?: string; timeout?: string; json?: boolean }) => {
      // Ctrl-C cancels the job (SIGTERM, then SIGKILL after a grace) and waits for its end; a second one leaves at once.
      const stop = new AbortController();
      const onSigint = () => {
        if (stop.signal.aborted) process.exit(130);
        console.error('cancelling the job (Ctrl-C again to leave without waiting)');
        stop.abort();
      };
      process.on('SIGINT', onSigint);
      return run(
        o.json,
        (client) =>
          client.sandboxes.runJob(
            id,
            { command, workdir: o.workdir, timeout: o.timeout },
            o.json
              ? { signal: stop.signal }
              : {
                  signal: stop.signal,
                  onResumed: (d) => console.error(`resumed from ${startedFrom(d)}`),
                  onOutput: (c) => (c.stream === 'stdout' ? process.stdout : process.stderr).write(c.data),
                },
          ),
        // The summary is not the job's output: on stderr, so `sandbox run … | jq` reads only what the job wrote.
        (r) => {
          console.error(
            `${r.exitCode === 0 && !r.cancelled ? '✓' : '✗'} job ${r.sequence} ${r.cancelled ? `cancelled (exit ${r.exitCode})` : `exited ${r.exitCode}`}${r.sessionPending ? '; saving its session' : ''}${r.sessionSnapshotId ? `; session ${r.sessionSnapshotId}` : ''}${r.sessionError ? `; session not saved: ${r.sessionError}` : ''}${r.stopped ? '; sandbox stopped' : ''}`,
          );
        },
        (r) => (r.cancelled ? 130 : jobExitCode(r.exitCode)),
      ).finally(() => process.off('SIGINT', onSigint));
    });

  sandbox
    .command('logs <id> [job]')
    .description("a job's whole output from its log (the last job when JOB is left out), byte for byte: stdout to stdout, stderr to stderr")
    .option('--follow', 'keep streaming while the job runs, until it ends (Ctrl-C stops following)')
    .option('--since <when>', 'only output written since, e.g. 10m or 2026-01-31T12:00:00Z')
    .action(async (id: string, job: string | undefined, o: { follow?: boolean; since?: string }) =>
      run(
        false,
        async (client) => {
          const stop = new AbortController();
          process.once('SIGINT', () => stop.abort());
          for await (const chunk of client.sandboxes.logs(id, {
            job: job === undefined ? undefined : /^\d+$/.test(job) ? Number(job) : NaN,
            follow: o.follow,
            since: o.since,
            signal: stop.signal,
          }))
            (chunk.stream === 'stdout' ? process.stdout : process.stderr).write(chunk.data);
        },
        () => undefined,
      ),
    );

  sandbox
    .command('fork <id>')
    .description(
      "a new sandbox from this one's latest session snapshot, or from its live state saved on the spot while it runs (it keeps running); the fork goes on independently",
    )
    .option('--name <id>', "the fork's id, a UUID (default: a fresh one); a taken one is refused")
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { name?: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.fork({ sandbox: id, name: o.name }),
        (r) =>
          console.log(
            `✓ sandbox ${r.sandboxId} ${r.status.state} on ${r.status.hostId}, forked from ${id}${r.forkedFrom.live ? ' (saved live)' : ''}\n${r.status.lastStart ? explain(r.status.lastStart) : ''}`,
          ),
      ),
    );

  sandbox
    .command('promote <id>')
    .description(
      'save an idle vm sandbox as a workspace golden snapshot (refused while a job runs); a stopped one publishes its latest session',
    )
    .requiredOption('--name <name>', 'snapshot name, e.g. agent-golden-v2')
    .option('--set-default', 'make it the default for its size/profile')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { name: string; setDefault?: boolean; json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.promote(id, { name: o.name, setDefault: o.setDefault }),
        (r) =>
          console.log(`✓ promoted to ${r.name} (${r.snapshotId})${r.default ? `, default v${r.default.version}` : ''}\n  ${r.storedRef}`),
      ),
    );

  sandbox
    .command('status <id>')
    .description('state, host, jobs and latest session snapshot of a sandbox')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.status(id),
        (s) => console.log(describeStatus(s)),
      ),
    );

  sandbox
    .command('list')
    .description('sandboxes in a workspace')
    .addOption(workspaceOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.list(o.workspace),
        (rows) =>
          printTable(
            ['ID', 'STATE', 'CLASS', 'SIZE', 'RUNTIME', 'HOST'],
            rows.map((r) => [r.id, r.state, r.class, r.size, r.runtime, r.hostId]),
            `no sandboxes in ${o.workspace}`,
          ),
      ),
    );

  sandbox
    .command('destroy <id>')
    .description('remove the container and end the sandbox workflow (its snapshots stay)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.destroy(id),
        (s) => console.log(`✓ sandbox ${s.sandboxId} destroyed`),
      ),
    );

  const issue = program.command('issue').description('issues: pin the golden snapshot their sandboxes start from');
  issue
    .command('pin <issue> <snapshot>')
    .description("start the issue's sandboxes from this golden snapshot")
    .addOption(workspaceOption())
    .option('--json', 'machine-readable output')
    .action(async (key: string, snapshot: string, o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.pin({ workspace: o.workspace, issue: key, snapshot }),
        () => console.log(`✓ ${key} pinned to ${snapshot}`),
      ),
    );
  issue
    .command('unpin <issue>')
    .description("let the issue's sandboxes start by the usual restore order again")
    .addOption(workspaceOption())
    .option('--json', 'machine-readable output')
    .action(async (key: string, o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.sandboxes.unpin({ workspace: o.workspace, issue: key }),
        () => console.log(`✓ ${key} unpinned`),
      ),
    );
}
