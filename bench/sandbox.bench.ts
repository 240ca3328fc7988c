// End to end through SnapflowClient, as a caller sees it: a sandbox from the cached golden default plus its first
// job, against a fresh sandbox running the same dependency step as the golden preload. p50 and p95 of each, and the
// orchestration share of the golden path: client call → first job output, minus the Docker work (activity run times).
import { temporal } from '@temporalio/proto';
import type { TestEnv } from '../test/support/stack';
import { hosts } from '../db/schema';
import { workflowIds } from '../lib/ids';
import { DEPS } from './golden.bench';
import { median, percentile } from './measure';

const RUNS = 10;
/** The host's own work (Docker or QEMU): what is left of a call's time without it is orchestration. */
const DOCKER_ACTIVITIES = new Set([
  'containerBoot',
  'containerExec',
  'vmBoot',
  'vmRestore',
  'vmExec',
  'cacheSnapshot',
  'createTempSandbox',
  'execInSandbox',
  'startVmSandbox',
  'restoreVmSandbox',
]);
const EventType = temporal.api.enums.v1.EventType;

/** Milliseconds the host worker spent in Docker activities of this sandbox's workflow before `untilMs`. */
async function dockerMs(t: TestEnv, sandboxId: string, untilMs: number): Promise<number> {
  const history = await t.client.temporal.workflow.getHandle(workflowIds.sandbox(sandboxId)).fetchHistory();
  const ms = (e: temporal.api.history.v1.IHistoryEvent) =>
    Number(e.eventTime!.seconds) * 1000 + Math.floor((e.eventTime!.nanos ?? 0) / 1e6);
  const scheduled = new Map<string, string>();
  const started = new Map<string, number>();
  let total = 0;
  for (const e of history.events ?? []) {
    const id = String(e.eventId);
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
      scheduled.set(id, e.activityTaskScheduledEventAttributes!.activityType!.name!);
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
      started.set(String(e.activityTaskStartedEventAttributes!.scheduledEventId), ms(e));
    if (e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
      const s = String(e.activityTaskCompletedEventAttributes!.scheduledEventId);
      if (DOCKER_ACTIVITIES.has(scheduled.get(s) ?? '') && started.has(s)) total += Math.min(ms(e), untilMs) - started.get(s)!;
    }
  }
  return total;
}

export async function benchSandboxEndToEnd(t: TestEnv): Promise<void> {
  const sandboxes = t.client.sandboxes;
  const spec = { class: 'vm', size: 'small', runtime: 'codex' } as const;
  // The golden default: the dependency step done once, promoted as the workspace default for codex/small.
  const maker = await sandboxes.create({ workspace: 'bench-golden', ...spec, keepAlive: true });
  await sandboxes.runJob(maker.sandboxId, { command: ['sh', '-c', `mkdir -p /workspace/app && cd /workspace/app && ${DEPS}`] });
  await sandboxes.promote(maker.sandboxId, { name: 'bench-golden-v1', setDefault: true });
  await sandboxes.destroy(maker.sandboxId);

  const golden: number[] = [];
  const orchestration: number[] = [];
  const fresh: number[] = [];
  for (let i = 0; i < RUNS + 1; i++) {
    const start = Date.now();
    let firstOutput = 0;
    const box = await sandboxes.create({ workspace: 'bench-golden', ...spec });
    await sandboxes.runJob(
      box.sandboxId,
      { command: ['sh', '-c', 'test -f /workspace/app/.deps-built && echo ready'] },
      { onOutput: () => (firstOutput ||= Date.now()) },
    );
    const end = Date.now();
    firstOutput ||= end;
    if (i > 0) {
      // the first run warms the host cache and the code paths
      golden.push(end - start);
      orchestration.push(firstOutput - start - (await dockerMs(t, box.sandboxId, firstOutput)));
    }
    await sandboxes.destroy(box.sandboxId);
  }
  for (let i = 0; i < RUNS; i++) {
    const start = Date.now();
    const box = await sandboxes.create({ workspace: 'bench-fresh', ...spec });
    await sandboxes.runJob(box.sandboxId, { command: ['sh', '-c', `mkdir -p /workspace/app && cd /workspace/app && ${DEPS}`] });
    fresh.push(Date.now() - start);
    await sandboxes.destroy(box.sandboxId);
  }
  // Cold: a new machine booted from the base image to its first job. Session: a stopped sandbox's next job, which
  // restores the machine its last job saved (from this host's cache).
  const cold: number[] = [];
  const session: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = Date.now();
    const box = await sandboxes.create({ workspace: 'bench-cold', ...spec });
    await sandboxes.runJob(box.sandboxId, { command: ['true'] }, { waitForSession: true });
    cold.push(Date.now() - start);
    const resumed = Date.now();
    await sandboxes.runJob(box.sandboxId, { command: ['true'] });
    session.push(Date.now() - resumed);
    await sandboxes.destroy(box.sandboxId);
  }
  const [host] = await t.db.db.select().from(hosts);
  const profile = host?.vmProfiles?.small ?? 'no vm profile';
  const ratio = median(fresh) / median(golden);
  const line = (v: number[]) => `p50 ${median(v).toFixed(0)} ms, p95 ${percentile(v, 95).toFixed(0)} ms`;
  console.log(`  vm machine profile for small on this host: ${profile} (accel ${profile.split('/')[2] ?? '?'})`);
  console.log(`  cold boot from the base image + first job (${RUNS} runs): ${line(cold)}`);
  console.log(`  stopped sandbox: next job restoring its cached session (${RUNS} runs): ${line(session)}`);
  console.log(`  sandbox from the cached golden default + first job (${RUNS} runs): ${line(golden)}`);
  console.log(`  fresh sandbox + the same 48 MiB dependency step (${RUNS} runs): ${line(fresh)}`);
  console.log(`${ratio >= 10 ? '✓' : '✗'} end to end through SnapflowClient: fresh ÷ golden = ${ratio.toFixed(1)}× (target ≥ 10×)`);
  const share = median(orchestration);
  console.log(
    `${share < 300 ? '✓' : '✗'} orchestration on the golden path (client call → first output, minus Docker activities): p50 ${share.toFixed(0)} ms, p95 ${percentile(orchestration, 95).toFixed(0)} ms (target < 300 ms)`,
  );
}
