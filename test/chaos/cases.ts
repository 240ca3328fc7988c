// Chaos cases: each breaks one part of a running stack on purpose, lets it come back, and checks what a user
// would check afterwards — the run finished (or failed with a typed reason), nothing is left behind, nothing
// was written twice. Loops are bounded by `runs`; every wait has a deadline.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { and, asc, eq, ne } from 'drizzle-orm';
import { defaultHistory, defaultPointers, goldenBuilds, snapshots } from '../../db/schema';
import { SnapflowError, describeFailure } from '../../lib/errors';
import { CONTAINER_LABEL, WORKFLOW_LABEL } from '../../lib/ids';
import { BASE_IMAGE_REF } from '../../lib/presets';
import { deriveImage, pushImage } from '../support/images';
import { makeBareRepo } from '../support/repos';
import type { ChaosEnv } from './env';
import { vmLeftovers } from './vmAudit';

export interface CaseResult {
  name: string;
  runs: number;
  survived: number;
  orphans: number;
  duplicates: number;
  notes: string[];
}

export type ChaosCase = (env: ChaosEnv, runs: number) => Promise<CaseResult>;

export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function isRunning(env: ChaosEnv, workflowId: string): Promise<boolean> {
  try {
    return (await env.client.temporal.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
  } catch {
    return false;
  }
}

/** Waits until the workflow has an activity of this type in flight. */
async function pendingActivity(env: ChaosEnv, workflowId: string, type: string): Promise<void> {
  await until(`${type} in ${workflowId}`, async () => {
    const d = await env.client.temporal.workflow.getHandle(workflowId).describe();
    return (d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === type) || undefined;
  });
}

/**
 * Leftovers and double writes anywhere in the stack: temp/sandbox containers whose workflow has ended, VMs and
 * half-written saved machines no sandbox needs,
 * `pending` snapshots or `running` golden builds without a live run, live names twice, and default histories
 * whose chain is broken (an entry whose previous is not the entry before it).
 */
export async function audit(env: ChaosEnv): Promise<{ orphans: string[]; duplicates: string[] }> {
  const orphans: string[] = [];
  const duplicates: string[] = [];
  for (const role of ['temp', 'sandbox']) {
    for (const c of await env.docker.listContainers({ all: true, filters: { label: [`${CONTAINER_LABEL}=${role}`] } })) {
      const wf = c.Labels[WORKFLOW_LABEL] ?? '';
      if (!wf || !(await isRunning(env, wf))) orphans.push(`${role} container ${c.Names[0]} (${wf || 'no workflow'})`);
    }
  }
  orphans.push(...(await vmLeftovers(env)));
  for (const s of await env.db.db.select().from(snapshots).where(eq(snapshots.status, 'pending'))) {
    if (!s.workflowId || !(await isRunning(env, s.workflowId))) orphans.push(`pending snapshot ${s.name} without a live run`);
  }
  for (const b of await env.db.db.select().from(goldenBuilds).where(eq(goldenBuilds.status, 'running'))) {
    if (!(await isRunning(env, b.workflowId))) orphans.push(`golden build ${b.id} still 'running' without a live run`);
  }
  const live = await env.db.db
    .select({ workspace: snapshots.workspace, name: snapshots.name })
    .from(snapshots)
    .where(ne(snapshots.status, 'deleted'));
  const seen = new Set<string>();
  for (const r of live) {
    const key = `${r.workspace}/${r.name}`;
    if (seen.has(key)) duplicates.push(`snapshot name ${key} twice`);
    seen.add(key);
  }
  const history = await env.db.db.select().from(defaultHistory).orderBy(asc(defaultHistory.id));
  const last = new Map<string, string>();
  for (const h of history) {
    const key = `${h.workspace}/${h.size}/${h.profileKey}`;
    if ((last.get(key) ?? null) !== h.previousSnapshotId) duplicates.push(`default history of ${key} broken at entry ${h.id}`);
    last.set(key, h.snapshotId);
  }
  return { orphans, duplicates };
}

/** Typed = a failure a person can act on; INTERNAL means we did not understand what happened. */
export const typedFailure = (err: unknown): string | undefined =>
  err instanceof SnapflowError && err.code !== 'INTERNAL' ? err.code : undefined;

export async function result(env: ChaosEnv, name: string, runs: number, survived: number, notes: string[]): Promise<CaseResult> {
  const { orphans, duplicates } = await audit(env);
  return { name, runs, survived, orphans: orphans.length, duplicates: duplicates.length, notes: [...notes, ...orphans, ...duplicates] };
}

let repoCount = 0;
/** A golden config whose dependency step takes `seconds` (and writes `mib` MiB, so commit and push carry weight). */
async function slowGolden(env: ChaosEnv, workspace: string, seconds: number, mib = 8): Promise<void> {
  const dir = join(env.dir, `repos-${++repoCount}`);
  mkdirSync(dir, { recursive: true });
  const repo = makeBareRepo(dir, 'app', { 'tembo.nix': '{ }\n' });
  await env.client.golden.setConfig({
    workspace: workspace,
    repos: [repo],
    prebuildDeps: true,
    depsFallbackCommand: `sleep ${seconds} && dd if=/dev/urandom of=deps.bin bs=1M count=${mib} 2>/dev/null && echo ok > .deps-built`,
    targets: ['small:codex'],
  });
}

/** Breaks something while a golden build is at `during`, then expects the build to finish. */
function goldenUnder(
  name: string,
  workspace: string,
  during: string,
  breakIt: (env: ChaosEnv) => Promise<void>,
  opts: { seconds?: number; mib?: number } = {},
): ChaosCase {
  return async (env, runs) => {
    await slowGolden(env, workspace, opts.seconds ?? 4, opts.mib);
    let survived = 0;
    const notes: string[] = [];
    for (let i = 0; i < runs; i++) {
      const started = await env.client.golden.buildNow({ workspace: workspace });
      await pendingActivity(env, started.workflowId, during);
      await sleep(1000);
      await breakIt(env);
      try {
        const built = await env.client.golden.waitForBuild(started.workflowId);
        if (built.status === 'succeeded') survived++;
        else notes.push(`run ${i}: ${built.status} ${built.reason ?? ''}`);
      } catch (err) {
        notes.push(`run ${i}: ${typedFailure(err) ? `failed typed ${typedFailure(err)}` : `UNTYPED ${(err as Error).message}`}`);
      }
    }
    return result(env, name, runs, survived, notes);
  };
}

export const killHostMidGolden = goldenUnder('kill -9 host worker mid golden build', 'chaos-kill-golden', 'buildDeps', async (env) => {
  await env.killHostWorker();
  await env.startHostWorker();
});

export const restartTemporalMidGolden = goldenUnder(
  'restart Temporal (same SQLite) mid golden build',
  'chaos-temporal',
  'buildDeps',
  (env) => env.restartTemporal(),
);

export const restartPostgresMidGolden = goldenUnder(
  'restart PostgreSQL mid golden build',
  'chaos-postgres',
  'buildDeps',
  (env) => env.restartPostgres(),
  { seconds: 6 },
);

export const restartDockerdMidGolden = goldenUnder(
  'restart dockerd (live-restore) mid golden build',
  'chaos-dockerd',
  'buildDeps',
  (env) => env.restartDockerd(),
  { seconds: 6 },
);

export const restartStorageMidPush = goldenUnder(
  'registry down 3 s during the upload',
  'chaos-storage',
  'pushImage',
  (env) => env.restartStorage({ downForMs: 3000 }),
  { seconds: 1, mib: 96 },
);

export const killHostMidImageSnapshot: ChaosCase = async (env, runs) => {
  // A heavy image, so the kill lands while bytes move.
  const heavy = await deriveImage(env.docker, 'dd if=/dev/urandom of=/opt/blob bs=1M count=96 2>/dev/null', 'chaos-heavy');
  await pushImage(env.docker, heavy, { registryHost: env.publicRegistry, repository: 'chaos/heavy', tag: 'v1' });
  await env.docker.getImage(heavy).remove(); // so the host must really download its layers
  let survived = 0;
  const notes: string[] = [];
  for (let i = 0; i < runs; i++) {
    const name = `heavy-${i}-v1`;
    const created = await env.client.snapshots.create({
      workspace: 'chaos-images',
      name,
      image: `${env.publicRegistry}/chaos/heavy:v1`,
      runtime: 'codex',
      size: 'small',
    });
    const waiting = env.client.snapshots.wait(created).then(
      (done) => ({ done }),
      (err: unknown) => ({ err }),
    );
    let settled = false;
    void waiting.then(() => (settled = true));
    // The kill lands while bytes move (or right after, if the transfer beat the poll: the checks still apply).
    await until('the transfer', async () => {
      if (settled) return true;
      const d = await env.client.temporal.workflow.getHandle(created.workflowId).describe();
      return (d.raw.pendingActivities ?? []).some((a) => ['pullImage', 'storeImage'].includes(a.activityType?.name ?? '')) || undefined;
    });
    await env.killHostWorker();
    await sleep(500);
    await env.startHostWorker();
    const outcome = await waiting;
    if ('done' in outcome && outcome.done.status === 'active') survived++;
    else if ('err' in outcome)
      notes.push(
        `${name}: ${typedFailure(outcome.err) ? `failed typed ${typedFailure(outcome.err)}` : `UNTYPED ${(outcome.err as Error).message}`}`,
      );
    const rows = await env.db.db
      .select()
      .from(snapshots)
      .where(and(eq(snapshots.workspace, 'chaos-images'), eq(snapshots.name, name)));
    if (rows.length !== 1) notes.push(`${name}: ${rows.length} catalog rows`);
  }
  return result(env, 'kill -9 host worker mid image snapshot', runs, survived, notes);
};

export const killHostMidPromote: ChaosCase = async (env, runs) => {
  const { sandboxId } = await env.client.sandboxes.create({
    workspace: 'chaos-promote',
    class: 'vm',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  await env.client.sandboxes.runJob(sandboxId, {
    command: ['sh', '-c', 'mkdir -p /opt && dd if=/dev/urandom of=/opt/state bs=1M count=128 2>/dev/null'],
  });
  let survived = 0;
  const notes: string[] = [];
  // Saving the machine and its upload take a second or two; a round whose promote beat the poll did not test a
  // crash, so it is tried again (bounded) rather than counted. (Runs recorded before vm machines committed an image.)
  const inFlight = ['vmSaveSession', 'snapshotVmSandbox', 'commitSandbox', 'verifyBoot', 'pushImage'];
  for (let i = 0; i < runs; i++) {
    let landed = false;
    for (let attempt = 0; attempt < 4 && !landed; attempt++) {
      const promoting = env.client.sandboxes.promote(sandboxId, { name: `promoted-${i}-${attempt}` }).then(
        (r) => ({ ok: true as const, r }),
        (err: unknown) => ({ ok: false as const, err }),
      );
      let settled = false;
      void promoting.then(() => (settled = true));
      await until('the promote in flight (or its end)', async () => {
        if (settled) return true;
        const d = await env.client.temporal.workflow.getHandle(`sandbox/${sandboxId}`).describe();
        return (d.raw.pendingActivities ?? []).some((a) => inFlight.includes(a.activityType?.name ?? '')) || undefined;
      });
      landed = !settled;
      if (landed) {
        await env.killHostWorker();
        await sleep(500);
        await env.startHostWorker();
      }
      const outcome = await promoting;
      if (landed) {
        if (outcome.ok || typedFailure(outcome.err)) survived++;
        else notes.push(`promote ${i}: UNTYPED ${(outcome.err as Error).message}`);
      }
      const state = await until('the sandbox back to idle', async () =>
        (await env.client.sandboxes.status(sandboxId)).state === 'idle' ? 'idle' : undefined,
      );
      if (state !== 'idle') notes.push(`promote ${i}: sandbox left ${state}`);
    }
    if (!landed) notes.push(`promote ${i}: finished before the kill could land, four times`);
  }
  const job = await env.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'test -f /opt/state && echo intact'] });
  if (job.stdout.trim() !== 'intact') {
    notes.push('sandbox state lost after the promote crashes');
    survived = Math.min(survived, runs - 1);
  }
  await env.client.sandboxes.destroy(sandboxId);
  return result(env, 'kill -9 host worker mid promote', runs, survived, notes);
};

export const storageReadOnly: ChaosCase = async (env, runs) => {
  const workspace = 'chaos-readonly';
  await slowGolden(env, workspace, 0, 4);
  await env.restartStorage({ readOnly: true });
  let survived = 0;
  const notes: string[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const started = await env.client.golden.buildNow({ workspace: workspace });
      try {
        await env.client.golden.waitForBuild(started.workflowId);
        notes.push(`run ${i}: a read-only registry accepted the upload?`);
      } catch (err) {
        const code = typedFailure(err);
        const registered = await env.db.db.select().from(snapshots).where(eq(snapshots.workspace, workspace));
        if (code === 'STORAGE_UNAVAILABLE' && registered.length === 0) survived++;
        else notes.push(`run ${i}: ${code ?? (err as Error).message}, ${registered.length} snapshot(s) registered`);
      }
    }
  } finally {
    await env.restartStorage({ readOnly: false });
  }
  return result(env, 'read-only storage: upload fails typed after bounded retries', runs, survived, notes);
};

export const setDefaultRace: ChaosCase = async (env, runs) => {
  const workspace = 'chaos-defaults';
  await slowGolden(env, workspace, 0, 1);
  for (let i = 0; i < 2; i++) await env.client.golden.waitForBuild((await env.client.golden.buildNow({ workspace: workspace })).workflowId);
  const names = (await env.db.db.select().from(snapshots).where(eq(snapshots.workspace, workspace))).map((s) => s.name);
  let survived = 0;
  const notes: string[] = [];
  const rounds = Math.max(1, Math.floor(runs / 20));
  for (let round = 0; round < rounds; round++) {
    const before = (await env.db.db.select().from(defaultHistory).where(eq(defaultHistory.workspace, workspace))).length;
    const [pointer] = await env.db.db.select().from(defaultPointers).where(eq(defaultPointers.workspace, workspace));
    // Twenty callers who all saw the same version: compare-and-set lets exactly one through.
    const attempts = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        env.client.golden.setDefault({
          workspace: workspace,
          name: names[i % 2]!,
          reason: `chaos ${round}/${i}`,
          expectedVersion: pointer!.version,
        }),
      ),
    );
    const won = attempts.filter((a) => a.status === 'fulfilled').length;
    const after = (await env.db.db.select().from(defaultHistory).where(eq(defaultHistory.workspace, workspace))).length;
    if (won === 1 && after === before + 1) survived += 20;
    else {
      const refusals = [...new Set(attempts.flatMap((a) => (a.status === 'rejected' ? [describeFailure(a.reason).code] : [])))];
      notes.push(`round ${round}: ${won} winners, ${after - before} history rows (refused: ${refusals.join(', ')})`);
    }
  }
  return result(env, '20 concurrent set-defaults on one size/profile', rounds * 20, survived, notes);
};

export const promoteVsJobRace: ChaosCase = async (env, runs) => {
  const { sandboxId } = await env.client.sandboxes.create({
    workspace: 'chaos-race',
    class: 'vm',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  let survived = 0;
  const notes: string[] = [];
  for (let i = 0; i < runs; i++) {
    // Fired together, alternating which call leaves first.
    const promote = () => env.client.sandboxes.promote(sandboxId, { name: `race-${i}` });
    const runJob = () => env.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', `echo ${i} >> /tmp/rounds`] });
    const [promoted, job] =
      i % 2
        ? await Promise.allSettled([promote(), runJob()])
        : await (async () => {
            const jobCall = runJob();
            const promoteCall = promote();
            const [j, p] = await Promise.allSettled([jobCall, promoteCall]);
            return [p, j] as const;
          })();
    const settled = [promoted, job];
    const won = settled.filter((s) => s.status === 'fulfilled').length;
    const busy = settled.filter((s) => s.status === 'rejected' && (s.reason as SnapflowError).code === 'SANDBOX_BUSY').length;
    // They never interleave: one is refused SANDBOX_BUSY, or both win one after the other (a promote that arrives
    // while the job's session is being saved waits for the save; the workflow takes a promote only when idle).
    const oneAfterTheOther = won === 2 && job.status === 'fulfilled' && job.value.exitCode === 0;
    if ((won === 1 && busy === 1) || oneAfterTheOther) survived++;
    else notes.push(`round ${i}: ${won} winners, ${busy} SANDBOX_BUSY`);
  }
  await env.client.sandboxes.destroy(sandboxId);
  return result(env, 'promote vs job fired together', runs, survived, notes);
};

export const createRace: ChaosCase = async (env, runs) => {
  await pushImage(env.docker, BASE_IMAGE_REF, { registryHost: env.publicRegistry, repository: 'chaos/base', tag: 'v1' });
  const attempts = await Promise.allSettled(
    Array.from({ length: runs }, () =>
      env.client.snapshots.create({
        workspace: 'chaos-create',
        name: 'same-name-v1',
        image: `${env.publicRegistry}/chaos/base:v1`,
        runtime: 'codex',
        size: 'small',
      }),
    ),
  );
  const ids = new Set(
    attempts.filter((a) => a.status === 'fulfilled').map((a) => (a as PromiseFulfilledResult<{ snapshotId: string }>).value.snapshotId),
  );
  const first = attempts.find((a) => a.status === 'fulfilled') as
    PromiseFulfilledResult<Parameters<ChaosEnv['client']['snapshots']['wait']>[0]> | undefined;
  if (first) await env.client.snapshots.wait(first.value);
  const rows = await env.db.db.select().from(snapshots).where(eq(snapshots.workspace, 'chaos-create'));
  const notes = ids.size === 1 && rows.length === 1 ? [] : [`${ids.size} snapshot ids answered, ${rows.length} rows`];
  return result(env, `${runs} concurrent creates of one name`, runs, ids.size === 1 && rows.length === 1 ? runs : 0, notes);
};
