// `snapflow golden …`: config, build now, set-default, rollback, schedule. Thin over the client.
import type { Command } from 'commander';
import { SYSTEM_SCOPE } from '../lib/ids';
import type { Runtime } from '../lib/presets';
import { followSteps } from './cliProgress';
import { workspaceOption } from './cliConfig';
import type { Run } from './cliRun';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerGoldenCommands(program: Command, run: Run): void {
  const golden = program.command('golden').description('golden snapshots: pre-warmed starting points, one default per size/profile');
  const config = golden.command('config').description('the golden build config of a workspace');

  config
    .command('set')
    .description('store the config and create/update/pause its daily Temporal Schedule')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--repo <url-or-path>', 'repository to preload (repeatable)', collect)
    .option('--embed-skills', 'copy the skills directory into the image')
    .option('--skills-path <dir>', 'skills directory on the host workers')
    .option('--prebuild-deps', "pre-build dependencies from each repo's tembo.nix")
    .option('--deps-fallback <command>', 'run this instead of tembo.nix when the image has no Nix')
    .requiredOption(
      '--target <size:runtime>',
      'sandbox size/profile to build for (repeatable), e.g. small:codex; small:codex:vm saves a booted vm machine',
      collect,
    )
    .option('--base <snapshot>', 'image snapshot the build starts from (default: the built-in base)')
    .option('--schedule <cron|HH:MM>', 'daily rebuild: "03:00" or a cron like "0 3 * * *"')
    .option('--time-zone <tz>', 'IANA time zone of the schedule', 'UTC')
    .option('--enabled', 'run the schedule (otherwise it is created paused)')
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        workspace: string;
        repo?: string[];
        embedSkills?: boolean;
        skillsPath?: string;
        prebuildDeps?: boolean;
        depsFallback?: string;
        target: string[];
        base?: string;
        schedule?: string;
        timeZone: string;
        enabled?: boolean;
        json?: boolean;
      }) =>
        run(
          o.json,
          (client) =>
            client.golden.setConfig({
              workspace: o.workspace,
              repos: o.repo,
              embedSkills: o.embedSkills,
              skillsPath: o.skillsPath,
              prebuildDeps: o.prebuildDeps,
              depsFallbackCommand: o.depsFallback,
              targets: o.target,
              base: o.base,
              schedule: o.schedule,
              timeZone: o.timeZone,
              enabled: o.enabled,
            }),
          ({ config: c, schedule }) => {
            console.log(
              `✓ golden config for ${c.workspace}: ${c.targets.map((t) => `${t.size}:${t.runtime}${t.machine ? ':vm' : ''}${t.base ? ` on ${t.base}` : ''}`).join(', ')}; ${c.repos.length} repo(s)`,
            );
            console.log(
              schedule
                ? `  schedule ${c.scheduleCron} ${c.scheduleTimeZone} ${schedule.paused ? '(paused)' : `next ${schedule.nextRuns[0]?.toISOString() ?? '—'}`}`
                : '  no schedule',
            );
          },
        ),
    );

  config
    .command('get')
    .description('the stored config of a workspace')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.golden.getConfig(o.workspace),
        (c) =>
          console.log(
            [
              `golden config of ${c.workspace}`,
              `  targets:  ${c.targets.map((t) => `${t.size}:${t.runtime}${t.machine ? ':vm' : ''}${t.base ? ` on ${t.base}` : ''}`).join(', ')}`,
              `  repos:    ${c.repos.join(', ') || '—'}`,
              `  skills:   ${c.embedSkills ? `embedded from ${c.skillsPath ?? '—'}` : 'not embedded'}`,
              `  deps:     ${c.prebuildDeps ? `pre-built (fallback: ${c.depsFallbackCommand ?? 'none'})` : 'not pre-built'}`,
              `  schedule: ${c.scheduleCron ? `${c.scheduleCron} ${c.scheduleTimeZone}${c.enabled ? '' : ' (paused)'}` : 'none'}`,
            ].join('\n'),
          ),
      ),
    );

  golden
    .command('build')
    .description('build now (joins a build already running for the workspace)')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--wait', 'follow each step (sandbox → preload → commit and verify → upload → cache) until the result')
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; wait?: boolean; json?: boolean }) =>
      run(
        o.json,
        async (client) => {
          const started = await client.golden.buildNow({ workspace: o.workspace });
          const uiLink = client.uiLink(started.workflowId);
          if (!o.wait) return { ...started, uiLink, result: undefined };
          // The link first, then each step as the workflow reaches it (nothing but the result with --json).
          if (!o.json) console.error(`${started.joined ? 'joined the running build' : 'started build'} ${started.workflowId}\n  ${uiLink}`);
          const waiting = client.golden.waitForBuild(started.workflowId);
          const result = o.json
            ? await waiting
            : await followSteps(client, started.workflowId, waiting, (step) => console.error(`  … ${step}`));
          return { ...started, uiLink, result };
        },
        (r) => {
          if (!o.wait)
            console.log(
              `${r.joined ? 'joined the running build' : 'started build'} ${r.workflowId}\n  ${r.uiLink}\n  log: snapflow golden logs ${r.buildId.slice(0, 8)} --follow`,
            );
          if (r.result?.status === 'skipped')
            console.log(`! skipped: ${r.result.reason}: ${r.result.message} ${JSON.stringify(r.result.figures)}`);
          else if (r.result)
            console.log(`✓ ${r.result.snapshots.map((s) => `${s.name} is the default for ${s.size} ${s.profileKey}`).join('\n✓ ')}`);
        },
      ),
    );

  golden
    .command('logs <build>')
    .description("a golden build's log: each preload step's output (clones, skills, the dependency build) and how it ended")
    .option('--follow', 'keep streaming while it builds')
    .action(async (build: string, o: { follow?: boolean }) =>
      run(
        false,
        async (client) => {
          const stop = new AbortController();
          process.once('SIGINT', () => stop.abort());
          for await (const chunk of client.golden.logs({ build, follow: o.follow, signal: stop.signal }))
            (chunk.stream === 'stderr' ? process.stderr : process.stdout).write(chunk.data);
        },
        () => undefined,
      ),
    );

  golden
    .command('set-default <name>')
    .description('make a golden snapshot the default for its size/profile (compare-and-set)')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--reason <text>', 'why, for the history')
    .option('--expect-version <n>', 'apply only if the default is still at this version (CONFLICT otherwise)', (v) => Number(v))
    .option('--json', 'machine-readable output')
    .action(async (name: string, o: { workspace: string; reason?: string; expectVersion?: number; json?: boolean }) =>
      run(
        o.json,
        (client) => client.golden.setDefault({ workspace: o.workspace, name, reason: o.reason, expectedVersion: o.expectVersion }),
        (d) => console.log(`✓ ${name} is the default for ${d.workspace} ${d.size} ${d.profileKey} (version ${d.version})`),
      ),
    );

  golden
    .command('rollback')
    .description('return the default of a size/profile to the snapshot it replaced')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .requiredOption('--size <size>', 'small | medium | large')
    .requiredOption('--runtime <runtime>', 'codex | pi')
    .option('--base <snapshot>', 'the image snapshot the defaults were built on (default: the built-in base)')
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; size: string; runtime: Runtime; base?: string; json?: boolean }) =>
      run(
        o.json,
        (client) => client.golden.rollback(o),
        (d) =>
          console.log(
            `✓ rolled back: ${d.name ? `${d.name} (${d.snapshotId})` : d.snapshotId} is the default for ${d.workspace} ${d.size} ${d.profileKey} (version ${d.version})`,
          ),
      ),
    );

  golden
    .command('schedule')
    .description('next runs of the daily build and recent results')
    .addOption(workspaceOption(SYSTEM_SCOPE))
    .option('--json', 'machine-readable output')
    .action(async (o: { workspace: string; json?: boolean }) =>
      run(
        o.json,
        async (client) => ({
          schedule: await client.golden.scheduleState(o.workspace),
          builds: await client.golden.recentBuilds(o.workspace),
        }),
        ({ schedule, builds }) => {
          if (!schedule) console.log(`no schedule for ${o.workspace}`);
          else
            console.log(
              `${schedule.scheduleId} ${schedule.paused ? 'paused' : 'active'} (${schedule.timeZone})\n  next: ${schedule.nextRuns.map((d) => d.toISOString()).join(', ') || '—'}`,
            );
          for (const b of builds)
            console.log(`  ${b.startedAt.toISOString()} ${b.trigger.padEnd(9)} ${b.status.padEnd(9)} ${b.reason ?? ''} ${b.message ?? ''}`);
        },
      ),
    );
}
