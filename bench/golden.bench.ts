// The two golden-snapshot ratios, measured in one run on the real stack:
//  (a) a golden build through snapflow ÷ the same create/preload/commit/verify/push steps done directly;
//  (b) time-to-ready from the cached golden snapshot ÷ a fresh base image plus the same preload.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { runExec } from '../activities/docker';
import { followProgress } from '../activities/progress';
import { BASE_IMAGE_REF } from '../lib/presets';
import { makeBareRepo } from '../test/support/repos';
import type { TestEnv } from '../test/support/stack';
import { median, report, time } from './measure';

// The preload does real work, standing in for a dependency install: 48 MiB of dependency bytes written and
// hashed, then a few seconds of CPU in the sandbox's shell. Real installs (npm, nix) take far longer.
export const DEPS =
  'dd if=/dev/urandom of=deps.bin bs=1M count=48 2>/dev/null && sha256sum deps.bin > .deps-built && i=0 && while [ $i -lt 2000000 ]; do i=$((i+1)); done';
const RUNS = 3;

function sh(command: string, args: string[]): Promise<void> {
  return new Promise((done, failed) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('error', failed).on('close', (code) => (code === 0 ? done() : failed(new Error(`${command} exited ${code}`))));
  });
}

async function must(docker: Docker, containerId: string, command: string[], workdir?: string): Promise<void> {
  const r = await runExec(docker, { containerId, command, workdir });
  if (r.exitCode !== 0) throw new Error(`${command.join(' ')} exited ${r.exitCode}: ${r.stderr}`);
}

/** What a golden build does to a sandbox, done by hand: clone on the host, copy in, build deps. */
async function preload(docker: Docker, containerId: string, repo: string): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'bench-repo-'));
  try {
    await sh('git', ['clone', '-q', '--depth', '1', '--', repo, join(scratch, 'app')]);
    await must(docker, containerId, ['mkdir', '-p', '/workspace/app']);
    const tar = spawn('tar', ['-C', join(scratch, 'app'), '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await docker.getContainer(containerId).putArchive(tar.stdout, { path: '/workspace/app' });
    await must(docker, containerId, ['sh', '-c', DEPS], '/workspace/app');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function sandbox(docker: Docker, image: string): Promise<Docker.Container> {
  const c = await docker.createContainer({
    Image: image,
    Cmd: ['sleep', '600'],
    HostConfig: { NetworkMode: 'none', Memory: 2048 * 1024 * 1024 },
  });
  await c.start();
  return c;
}

async function rawBuild(t: TestEnv, repo: string, n: number): Promise<void> {
  const { docker } = t;
  const { registryHost, username, password } = t.stack.storage;
  const box = await sandbox(docker, BASE_IMAGE_REF);
  const repository = `${registryHost}/bench/raw`;
  try {
    await preload(docker, box.id, repo);
    await box.commit({ repo: repository, tag: `r${n}`, pause: false, changes: ['CMD ["/app/start.sh"]'] });
    const check = await docker.createContainer({
      Image: `${repository}:r${n}`,
      Entrypoint: ['/app/start.sh'],
      HostConfig: { NetworkMode: 'none' },
    });
    await check.start();
    await check.wait();
    await check.remove({ force: true });
    await followProgress(
      docker,
      await docker.getImage(repository).push({ tag: `r${n}`, authconfig: { username, password, serveraddress: registryHost } }),
    );
  } finally {
    await box.remove({ force: true });
  }
}

/** Milliseconds until a sandbox from `image` has the preloaded workspace; its removal is not counted. */
async function timeToReady(docker: Docker, image: string, repo?: string): Promise<number> {
  let box: Docker.Container | undefined;
  try {
    return await time(async () => {
      box = await sandbox(docker, image);
      if (repo) await preload(docker, box.id, repo);
      await must(docker, box.id, ['test', '-f', '/workspace/app/.deps-built']);
    });
  } finally {
    await box?.remove({ force: true });
  }
}

/** Where the last build's time went: each activity's run time, and what is left (orchestration). */
async function breakdown(t: TestEnv, workflowId: string): Promise<void> {
  const history = await t.client.temporal.workflow.getHandle(workflowId).fetchHistory();
  const ms = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
    Number(ts?.seconds ?? 0) * 1000 + (ts?.nanos ?? 0) / 1e6;
  const events = history.events ?? [];
  const scheduled = new Map<string, { type: string; at: number }>();
  const started = new Map<string, number>();
  const lines: string[] = [];
  let inActivities = 0;
  for (const e of events) {
    const at = ms(e.eventTime as never);
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(String(e.eventId), { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?', at });
    if (e.activityTaskStartedEventAttributes) started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), at);
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const s = scheduled.get(String(done.scheduledEventId))!;
      const run = at - (started.get(String(done.scheduledEventId)) ?? s.at);
      inActivities += run;
      lines.push(`${s.type} ${run.toFixed(0)}`);
    }
  }
  const wall = ms(events[events.length - 1]?.eventTime as never) - ms(events[0]?.eventTime as never);
  console.log(
    `  last build: ${wall.toFixed(0)} ms, ${lines.length} activities (${inActivities.toFixed(0)} ms running), orchestration ${(wall - inActivities).toFixed(0)} ms`,
  );
  console.log(`  ${lines.join(', ')}`);
}

export async function benchGolden(t: TestEnv): Promise<void> {
  const dir = mkdtempSync(join(t.stack.dir, 'bench-golden-'));
  try {
    const repo = makeBareRepo(dir, 'app', { 'README.md': 'bench app\n', 'tembo.nix': '{ }\n' });
    await t.client.golden.setConfig({
      workspace: 'ws-bench',
      repos: [repo],
      prebuildDeps: true,
      depsFallbackCommand: DEPS,
      targets: ['small:codex'],
    });
    const build = async () => t.client.golden.waitForBuild((await t.client.golden.buildNow({ workspace: 'ws-bench' })).workflowId);

    await build(); // warm-up: first Temporal task, first layer upload
    const viaSnapflow: number[] = [];
    const raw: number[] = [];
    let storedRef = '';
    for (let i = 0; i < RUNS; i++) {
      viaSnapflow.push(await time(async () => (storedRef = (await build()).storedRef!)));
      raw.push(await time(() => rawBuild(t, repo, i)));
    }
    const cached: number[] = [];
    const fresh: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      cached.push(await timeToReady(t.docker, storedRef));
      fresh.push(await timeToReady(t.docker, BASE_IMAGE_REF, repo));
    }
    console.log(`golden: ${RUNS} runs each, medians; preload = git clone + copy-in + 48 MiB deps + CPU loop`);
    await breakdown(t, 'golden-build/ws-bench');
    report('golden build: snapflow ÷ raw docker steps', median(viaSnapflow), median(raw), {
      target: '≤ 1.10',
      ok: median(viaSnapflow) / median(raw) <= 1.1,
    });
    report('time-to-ready: fresh base + preload ÷ cached golden', median(fresh), median(cached), {
      target: '≥ 10',
      ok: median(fresh) / median(cached) >= 10,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
