// Commit, then stall, for every writing activity: on a stack whose workers let the first call of each writing
// activity type do its work and then outlive its deadline (SNAPFLOW_CHAOS_STALL=writes), Temporal runs each again
// after its effect committed. The flows a user runs every day must still tell the truth: every retry answers what
// its stalled first attempt did, the caller gets the real outcome, nothing is left behind, nothing is written twice.
// The writers come from activities/writers.ts: one that no flow here reaches fails the test until it is reached or
// listed below with where its retry is proven instead.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { writingActivities } from '../activities/writers';
import { defaultHistory, goldenBuilds, issues, sandboxes, snapshots } from '../db/schema';
import { describeFailure } from '../lib/errors';
import { audit } from './chaos/cases';
import { startChaosEnv, type ChaosEnv } from './chaos/env';
import { stallSummary } from './chaos/stalls';
import { deriveImage, pushImage } from './support/images';
import { makeBareRepo, makeSkillsDir } from './support/repos';

/** Writers whose retry this file does not prove, and why; each must still be a writer (a renamed one fails). */
const NOT_HERE: Record<string, string> = {
  startVmSandbox: 'vm sandboxes boot under TCG for minutes: test/chaos.e2e.test.ts stalls this step',
  snapshotVmSandbox: 'vm only: test/chaos.e2e.test.ts stalls this step',
  noteGoldenLog: 'written only around the vm targets of a golden build (a line at a fixed place: a retry is a no-op)',
  restoreVmSandbox: 'vm only; not yet stalled anywhere (its boot and restore answers are kept in the VM directory)',
  cacheVmState: 'vm only; not yet stalled anywhere',
  evictVmState: 'vm only, with host cache eviction; not yet stalled anywhere',
  vmBoot: 'vm sandboxes boot under TCG for minutes: test/chaos.e2e.test.ts stalls the vm steps',
  vmRestore: 'vm only: test/chaos.e2e.test.ts stalls the vm steps',
  vmExec: 'vm only: test/chaos.e2e.test.ts stalls the vm steps',
  vmSaveSession: 'vm only: test/chaos.e2e.test.ts stalls the vm steps',
  vmStop: 'vm only: test/chaos.e2e.test.ts stalls the vm steps',
  containerExec: "a user's job runs at most once (one attempt, never retried), so the stall leaves it alone",
  moveAgents: 'agent rollouts need agents with health checks: test/agentsRun.e2e.test.ts, not stalled',
  moveAgentsBack: 'agent rollouts need agents with health checks: test/agentsRun.e2e.test.ts, not stalled',
  markGithubConnection: 'needs the GitHub App fake, which this stack has not',
  validateGithubConnection: 'needs the GitHub App fake, which this stack has not',
  pinIssueSnapshot: 'issue pins are not among these flows: test/sandbox.e2e.test.ts pins and unpins',
  unpinIssueSnapshot: 'issue pins are not among these flows: test/sandbox.e2e.test.ts pins and unpins',
  setHostStatus: 'drain and undrain (changeHostPlacement) are not among these flows: test/multiHost.e2e.test.ts drains hosts',
  upsertHost:
    'stalled as the stack starts, inside a host refresh its caller bounds at 30 s: the run ends before the retry (the next refresh writes the row)',
  evictSnapshot: 'host cache eviction runs only when a host holds more than it keeps: `npm run chaos -- --stall`',
  forgetHostCache: 'host cache eviction runs only when a host holds more than it keeps: `npm run chaos -- --stall`',
};

/** The short calls' start-to-close in this stack's workflow bundle (the product's is 30 s), so each stall costs ~12 s. */
const STALL_TIMEOUT_MS = 10_000;

let env: ChaosEnv;
beforeAll(async () => {
  env = await startChaosEnv({ stall: 'writes', stallTimeoutMs: STALL_TIMEOUT_MS });
}, 300_000);
afterAll(async () => env?.close(), 120_000);

const ws = 'stall-flows';
const image = (tag: string) => `${env.publicRegistry}/stall/base:${tag}`;

test('every writing flow tells the truth while each writer commits, stalls past its deadline and is retried', async () => {
  // An agent's image: its entrypoint keeps running, as a sandbox started from it needs.
  const agent = await deriveImage(env.docker, `printf '#!/bin/sh\\necho ready\\nexec sleep 86400\\n' > /app/start.sh`, 'stall-agent');
  await pushImage(env.docker, agent, { registryHost: env.publicRegistry, repository: 'stall/base', tag: 'v1' });
  const dir = join(env.dir, 'stall-inputs');
  mkdirSync(dir, { recursive: true });
  const repo = makeBareRepo(dir, 'app', { 'tembo.nix': '{ }\n' });
  const skills = makeSkillsDir(dir, { 'review.md': '# review\n' });

  // Image snapshot, its replacement (references move), the old one's delete, and a create that fails typed.
  const imageFlow = async () => {
    const first = await env.client.snapshots.wait(
      await env.client.snapshots.create({ workspace: ws, name: 'img-v1', image: image('v1'), runtime: 'codex', size: 'small' }),
    );
    const replacing = await env.client.snapshots.create({
      workspace: ws,
      name: 'img-v1',
      image: image('v1'),
      runtime: 'codex',
      size: 'medium',
      replace: true,
    });
    const second = await env.client.snapshots.wait(replacing);
    const deleted = await env.client.snapshots.delete({ workspace: ws, name: 'img-v1' });
    return { first, replacing, second, deleted };
  };
  const failingFlow = async () => {
    try {
      const created = await env.client.snapshots.create({
        workspace: ws,
        name: 'gone-v1',
        image: image('missing'),
        runtime: 'codex',
        size: 'small',
      });
      await env.client.snapshots.wait(created);
      return 'succeeded?';
    } catch (err) {
      return describeFailure(err).code;
    }
  };
  // Golden build with repos, skills and a deps step: registered, made the default, cached on its host.
  const goldenFlow = async () => {
    await env.client.golden.setConfig({
      workspace: ws,
      repos: [repo],
      embedSkills: true,
      skillsPath: skills,
      prebuildDeps: true,
      depsFallbackCommand: 'echo ok > .deps-built',
      targets: ['small:codex'],
    });
    return env.client.golden.waitForBuild((await env.client.golden.buildNow({ workspace: ws })).workflowId);
  };
  // A container sandbox for an issue from the replacing image snapshot: cached onto the host, a job, forked (its
  // files committed and its fork point registered, the fork started from them), both destroyed.
  const sandboxFlow = async (snapshot: string) => {
    const { sandboxId } = await env.client.sandboxes.create({
      workspace: ws,
      class: 'container',
      snapshot,
      keepAlive: true,
      issue: 'STALL-1',
    });
    const job = await env.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'echo ran > /root/ran && cat /root/ran'] });
    const fork = await env.client.sandboxes.fork({ sandbox: sandboxId });
    const forkJob = await env.client.sandboxes.runJob(fork.sandboxId, { command: ['cat', '/root/ran'] });
    await env.client.sandboxes.destroy(fork.sandboxId);
    const destroyed = await env.client.sandboxes.destroy(sandboxId);
    return { sandboxId, job, fork, forkJob, destroyed };
  };

  // The host self-test: a temp sandbox, a command (retried: the self-test's is idempotent), commit, push, cleanup.
  const selfTest = () => env.client.hostSelfTest({ hostId: env.hostId, push: true, nonce: 'stall' });

  const [images, failed, golden, checked] = await Promise.all([imageFlow(), failingFlow(), goldenFlow(), selfTest()]);
  const sandbox = await sandboxFlow(images.replacing.name);
  // The golden build made its snapshot the default (its set-default was stalled and retried): once, version 1.
  const [pointer] = await env.client.golden.defaults(ws);

  // The caller got the truth.
  expect(images.first).toMatchObject({ status: 'active', reused: false });
  expect(images.replacing).toMatchObject({ name: 'img-v2', replaces: images.first.snapshotId });
  expect(images.second).toMatchObject({ snapshotId: images.replacing.snapshotId, status: 'active' });
  expect(images.deleted).toEqual({ snapshotId: images.first.snapshotId, status: 'deleted' });
  expect(failed).toBe('IMAGE_NOT_FOUND');
  expect(golden).toMatchObject({ status: 'succeeded', snapshots: [expect.objectContaining({ size: 'small', runtime: 'codex' })] });
  expect(pointer).toMatchObject({ snapshotId: golden.snapshots[0]!.snapshotId, version: 1 });
  expect(checked).toMatchObject({
    hostId: env.hostId,
    output: expect.stringContaining('self-test Linux'),
    stored: { digest: expect.any(String) },
  });
  expect(sandbox.job).toMatchObject({ exitCode: 0, stdout: 'ran\n' });
  expect(sandbox.forkJob).toMatchObject({ exitCode: 0, stdout: 'ran\n' });
  expect(sandbox.fork.forkedFrom).toMatchObject({ sandboxId: sandbox.sandboxId, live: true });
  expect(sandbox.destroyed.state).toBe('stopped');

  // Nothing twice, nothing left.
  const rows = await env.db.db.select().from(snapshots).where(eq(snapshots.workspace, ws));
  expect(rows.map((r) => `${r.name} ${r.status}`).sort()).toEqual(
    [
      'gone-v1 failed',
      'img-v1 deleted',
      'img-v2 active',
      `${golden.snapshots[0]!.name} active`,
      `session-${sandbox.sandboxId}-fork-${sandbox.fork.sandboxId.slice(0, 8)} active`,
    ].sort(),
  );
  expect(await env.db.db.select().from(defaultHistory).where(eq(defaultHistory.workspace, ws))).toHaveLength(1);
  expect(await env.db.db.select().from(goldenBuilds).where(eq(goldenBuilds.workspace, ws))).toHaveLength(1);
  expect(await env.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandbox.sandboxId))).toHaveLength(1);
  const [forkRow] = await env.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandbox.fork.sandboxId));
  expect(forkRow!.forkedFromSnapshotId).toBe(sandbox.fork.forkedFrom.snapshotId);
  // The issue's row was written once, by the workflow, and the sandbox is registered under it.
  const issueRows = await env.db.db.select().from(issues).where(eq(issues.workspace, ws));
  expect(issueRows.map((row) => row.externalKey)).toEqual(['STALL-1']);
  const [row] = await env.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandbox.sandboxId));
  expect(row!.issueId).toBe(issueRows[0]!.id);
  expect(await audit(env)).toEqual({ orphans: [], duplicates: [] });

  // Every writer was stalled after its commit, and each retry answered what the lost attempt had.
  const summary = stallSummary(env.stalls());
  const wrong = summary.flatMap((t) => [...t.others, ...t.failed].map((w) => `${t.type} ${w}`));
  expect(wrong).toEqual([]);
  const proven = new Set(summary.filter((t) => t.same > 0).map((t) => t.type));
  const missing = writingActivities.filter((type) => !proven.has(type) && !(type in NOT_HERE));
  expect(missing).toEqual([]);
  expect(Object.keys(NOT_HERE).filter((type) => !writingActivities.includes(type))).toEqual([]);
  console.log(
    summary.map((t) => `${t.type}: ${t.stalled} stalled, ${t.same} same, ${t.unseen} unseen ${t.unseenCalls.join(' ')}`).join('\n'),
  );
}, 900_000);
