// Chaos cases for vm sandboxes: kill -9 of the host worker while a QEMU machine saves its session, or while one
// is restored from it. QEMU runs on without its worker (it is daemonized); the restarted worker's retry must end
// the job (done, or failed with a typed reason) and leave no machine, VM directory, half-written state or
// half-registered session behind.
import { and, eq, ne } from 'drizzle-orm';
import { evictState, readStateManifest } from '../../activities/vm/stateArtifacts';
import { sandboxes, snapshots } from '../../db/schema';
import { SnapflowError, describeFailure } from '../../lib/errors';
import { workflowIds } from '../../lib/ids';
import type { JobResult } from '../../workflows/contracts/sandbox';
import { result, sleep, typedFailure, until, type ChaosCase } from './cases';
import type { ChaosEnv } from './env';

/** Random bytes the guest keeps in RAM, so a save or a restore carries weight (zstd cannot shrink them). */
const STATE_MIB = 128;

type Outcome = { ok: true; value: JobResult } | { ok: false; err: unknown };
const settle = (job: Promise<JobResult>): Promise<Outcome> =>
  job.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );

/** What a job that ended before the kill could land answered, for the note. */
const missed = (o: Outcome): string =>
  o.ok
    ? `exit ${o.value.exitCode} ${o.value.stderr.trim().slice(0, 200)}, session ${o.value.sessionSnapshotId ?? o.value.sessionError ?? 'pending'}`
    : failure(o.err);

const failure = (err: unknown): string =>
  typedFailure(err) ? `failed typed ${typedFailure(err)}` : `UNTYPED ${describeFailure(err).message.slice(0, 300)}`;

/** Kills -9 the host worker once `activity` is in flight for the sandbox, then starts it again; false when the job ended first. */
async function killDuring(env: ChaosEnv, sandboxId: string, activity: string, job: Promise<Outcome>): Promise<boolean> {
  let settled = false;
  void job.then(() => (settled = true));
  await until(`${activity} in flight (or the job's end)`, async () => {
    if (settled) return true;
    const d = await env.client.temporal.workflow.getHandle(workflowIds.sandbox(sandboxId)).describe();
    return (d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === activity) || undefined;
  });
  if (settled) return false;
  await env.killHostWorker();
  await sleep(500);
  await env.startHostWorker();
  return true;
}

/** Session snapshots of the sandbox that are not whole: not active, without their saved machine in storage, or a dangling latest. */
async function halfRegistered(env: ChaosEnv, sandboxId: string): Promise<string[]> {
  const problems: string[] = [];
  const rows = await env.db.db
    .select()
    .from(snapshots)
    .where(and(eq(snapshots.sandboxId, sandboxId), eq(snapshots.kind, 'session'), ne(snapshots.status, 'deleted')));
  const registry = env.storage.url.replace(/^https?:\/\//, '');
  const credentials = { username: env.storage.username, password: env.storage.password };
  for (const r of rows) {
    if (r.status !== 'active' || !r.storedRef || !r.resolvedDigest || !r.machineProfile) {
      problems.push(`session ${r.name}: ${r.status}, stored ${r.storedRef ?? 'nowhere'}, profile ${r.machineProfile ?? 'none'}`);
      continue;
    }
    const repository = r.storedRef.slice(registry.length + 1, r.storedRef.indexOf('@'));
    const manifest = await readStateManifest({ registry, repository, credentials }, r.resolvedDigest).catch(() => undefined);
    if (!manifest) problems.push(`session ${r.name}: its saved machine ${r.storedRef} is not in storage`);
  }
  const [box] = await env.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandboxId));
  if (box?.latestSessionSnapshotId && !rows.some((r) => r.id === box.latestSessionSnapshotId))
    problems.push(`sandbox ${sandboxId}: its latest session ${box.latestSessionSnapshotId} is not a registered session`);
  return problems;
}

/** Tally of what the kills ended in, for the notes: success after the retry or a typed failure. */
function tally(saved: number, typed: string[]): string {
  return `outcomes: ${saved} done after the retry, ${typed.length} failed typed${typed.length ? ` (${typed.join(', ')})` : ''}`;
}

export const killHostMidSessionSave: ChaosCase = async (env, runs) => {
  const { sandboxId } = await env.client.sandboxes.create({
    workspace: 'chaos-vm-save',
    class: 'vm',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  let survived = 0;
  let saved = 0;
  const typed: string[] = [];
  const notes: string[] = [];
  for (let i = 0; i < runs; i++) {
    let landed = false;
    let last = '';
    for (let attempt = 0; attempt < 4 && !landed; attempt++) {
      const round = `${i}-${attempt}`;
      const job = settle(
        env.client.sandboxes.runJob(
          sandboxId,
          {
            command: [
              'sh',
              '-c',
              `mkdir -p /opt && dd if=/dev/urandom of=/opt/state bs=1M count=${STATE_MIB} 2>/dev/null && echo ${round} > /opt/round`,
            ],
          },
          { waitForSession: true },
        ),
      );
      landed = await killDuring(env, sandboxId, 'vmSaveSession', job);
      const outcome = await job;
      last = missed(outcome);
      if (!landed) continue;
      const problems = await halfRegistered(env, sandboxId);
      if (!outcome.ok) problems.push(`save ${i}: the job itself ${failure(outcome.err)}`);
      else if (outcome.value.sessionSnapshotId) saved++;
      else if (outcome.value.sessionError && !outcome.value.sessionError.startsWith('INTERNAL')) {
        typed.push(outcome.value.sessionError.split(':')[0]!);
        notes.push(`save ${i}: session not saved: ${outcome.value.sessionError.slice(0, 300)}`);
      } else
        problems.push(
          `save ${i}: ${outcome.value.sessionPending ? 'session still saving after the wait' : `UNTYPED ${outcome.value.sessionError}`}`,
        );
      // A kept-alive machine runs on through its worker's crash: the next job sees what this one wrote.
      const after = await settle(env.client.sandboxes.runJob(sandboxId, { command: ['cat', '/opt/round'] }, { waitForSession: true }));
      if (!after.ok) problems.push(`save ${i}: the next job ${failure(after.err)}`);
      else if (after.value.stdout.trim() !== round)
        problems.push(`save ${i}: the machine lost its state (read ${after.value.stdout.trim()})`);
      if (problems.length) notes.push(...problems);
      else survived++;
    }
    if (!landed) notes.push(`save ${i}: finished before the kill could land, four times (last: ${last})`);
  }
  await env.client.sandboxes.destroy(sandboxId);
  notes.unshift(tally(saved, typed));
  return result(env, 'kill -9 host worker mid vm session save', runs, survived, notes);
};

export const killHostMidSessionRestore: ChaosCase = async (env, runs) => {
  // Not kept alive: after each job the machine is saved and quits, so the next job restores it from that session.
  const { sandboxId } = await env.client.sandboxes.create({
    workspace: 'chaos-vm-restore',
    class: 'vm',
    size: 'small',
    runtime: 'codex',
    keepAlive: false,
  });
  const first = await env.client.sandboxes.runJob(
    sandboxId,
    {
      command: [
        'sh',
        '-c',
        `mkdir -p /opt && dd if=/dev/urandom of=/opt/state bs=1M count=${STATE_MIB} 2>/dev/null && echo kept > /opt/marker`,
      ],
    },
    { waitForSession: true },
  );
  if (!first.sessionSnapshotId)
    throw new SnapflowError({ code: 'INTERNAL', message: `the first session was not saved: ${first.sessionError}` });
  let survived = 0;
  let restored = 0;
  const typed: string[] = [];
  const notes: string[] = [];
  for (let i = 0; i < runs; i++) {
    let landed = false;
    let last = '';
    for (let attempt = 0; attempt < 4 && !landed; attempt++) {
      // Every other round the host has lost its cached copy, so the restore downloads the saved machine first.
      if (i % 2 === 0) {
        const [box] = await env.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandboxId));
        const [latest] = await env.db.db.select().from(snapshots).where(eq(snapshots.id, box!.latestSessionSnapshotId!));
        evictState(env.vm.cacheDir, latest!.storedRef!);
      }
      const job = settle(
        env.client.sandboxes.runJob(
          sandboxId,
          { command: ['sh', '-c', 'cat /opt/marker && wc -c < /opt/state'] },
          { waitForSession: true },
        ),
      );
      landed = await killDuring(env, sandboxId, 'vmRestore', job);
      const outcome = await job;
      last = missed(outcome);
      if (!landed) continue;
      const problems = await halfRegistered(env, sandboxId);
      if (outcome.ok) {
        const [marker, bytes] = outcome.value.stdout.trim().split('\n');
        if (outcome.value.resumedFrom?.source !== 'session')
          problems.push(`restore ${i}: resumed from ${outcome.value.resumedFrom?.source}`);
        else if (marker !== 'kept' || Number(bytes) !== STATE_MIB * 1024 * 1024)
          problems.push(`restore ${i}: the restored machine lost its files (${outcome.value.stdout.trim()})`);
        else restored++;
      } else if (typedFailure(outcome.err)) {
        typed.push(typedFailure(outcome.err)!);
        notes.push(`restore ${i}: ${describeFailure(outcome.err).message.slice(0, 300)}`);
      } else problems.push(`restore ${i}: ${failure(outcome.err)}`);
      if (problems.length) notes.push(...problems);
      else survived++;
    }
    if (!landed) notes.push(`restore ${i}: finished before the kill could land, four times (last: ${last})`);
  }
  await env.client.sandboxes.destroy(sandboxId);
  notes.unshift(tally(restored, typed));
  return result(env, 'kill -9 host worker mid vm session restore', runs, survived, notes);
};
