import {
  CancellationScope,
  allHandlersFinished,
  condition,
  isCancellation,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { RolloutSnapshot } from '../activities/agents';
import { describeFailure } from '../lib/errors';
import { access, agentCatalog, catalog, hostActivities, hostCacheActivities, hostGoldenActivities, hostJobActivities } from './activities';
import {
  abortRolloutUpdate,
  pauseRolloutUpdate,
  reportHealthUpdate,
  resumeRolloutUpdate,
  rolloutStatusQuery,
  type HealthReport,
  type RolloutControl,
  type RolloutPhase,
  type RolloutRequest,
  type RolloutResult,
  type RolloutStatus,
} from './contracts/rollout';
import { asFailure, failureOf, reject } from './failures';
import { withWorkspace } from './compat';
import { vouch } from './authorize';
import type { ActorClaim } from '../lib/actorClaim';
import { since } from './legacy';

const TERMINAL: readonly RolloutPhase[] = ['completed', 'rolled-back', 'aborted', 'failed'];

/** `auto`: a canary's entrypoint must still be running this long after its sandbox started. */
const CANARY_SETTLE_SECONDS = 10;
/** What a canary runs when its agent names no health command. */
const DEFAULT_HEALTH_COMMAND = ['true'];

/**
 * Authorize → resolve the agents → move the canary → wait for its health (a report, or `auto`: run the canary in
 * a sandbox of the new snapshot) → move the rest in batches, honouring pause / resume / abort between them. An unhealthy or silent
 * canary is moved back and the result says `rolled-back` with the reason; an abort moves every moved agent back.
 * Only real errors fail the run, and then too every agent it moved goes back first.
 */
export async function rolloutSnapshot(req: RolloutRequest): Promise<RolloutResult> {
  req = withWorkspace(req);
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  const canarySize = req.canary ?? 1;
  const batchSize = req.batchSize ?? 2;
  const healthTimeout = req.healthTimeout ?? '10 minutes';
  const s: RolloutStatus = {
    snapshotId: req.snapshotId,
    phase: 'authorizing',
    canary: [],
    moved: [],
    pending: [],
    already: [],
    movedBack: [],
    skipped: [],
    paused: false,
    health: [],
  };
  let abort: RolloutControl | undefined;
  /** The snapshot each agent was on when the rollout began: moves and moves back go from and to exactly that. */
  const origin = new Map<string, string>();
  /** Each agent's health command, for `auto`. */
  const healthCommands = new Map<string, string[]>();

  const show = (): void => {
    const total = s.moved.length + s.pending.length + s.movedBack.length;
    setCurrentDetails(
      `**${s.phase}**${s.paused ? ' (paused)' : ''} · ${s.moved.length}/${total} moved${s.canary.length ? ` · canary ${s.canary.join(', ')}` : ''}${s.reason ? `\n\n${s.reason}` : ''}`,
    );
  };
  const enter = (phase: RolloutPhase): void => {
    s.phase = phase;
    show();
  };

  setHandler(rolloutStatusQuery, () => s);

  /** Every control and report is decided against the workspace's roles here, so a direct Update is held to them too. */
  const authorized = async (actor: string, claim: ActorClaim | undefined, what: string): Promise<void> => {
    try {
      await access.authorize({
        ...vouch(claim),
        actor,
        workspace: req.workspace,
        action: 'agent.rollout',
        target: `${req.snapshotId}: ${what}`,
        run,
      });
    } catch (err) {
      asFailure(err);
    }
  };
  const requireActor = (call: { actor?: unknown } | undefined): void => {
    if (typeof call?.actor !== 'string' || call.actor.length === 0)
      reject('VALIDATION_FAILED', 'the request names no actor', { field: 'actor', hint: 'send who asks: { actor: "alice@example.com" }' });
    if (TERMINAL.includes(s.phase))
      reject('CONFLICT', `the rollout already ended (${s.phase})`, {
        field: 'snapshot',
        hint: 'see how it ended: `snapflow agent rollout-status`',
      });
  };
  const control = (verb: 'pause' | 'resume' | 'abort', apply: (c: RolloutControl) => void) => ({
    handler: async (c: RolloutControl): Promise<RolloutStatus> => {
      await authorized(c.actor, c.claim, `${verb}${c.reason ? ` (${c.reason})` : ''}`);
      if (!TERMINAL.includes(s.phase)) apply(c);
      show();
      return s;
    },
    validator: requireActor,
  });
  const pause = control('pause', () => (s.paused = true));
  const resume = control('resume', () => (s.paused = false));
  const stop = control('abort', (c) => (abort ??= c));
  setHandler(pauseRolloutUpdate, pause.handler, { validator: pause.validator });
  setHandler(resumeRolloutUpdate, resume.handler, { validator: resume.validator });
  setHandler(abortRolloutUpdate, stop.handler, { validator: stop.validator });
  setHandler(
    reportHealthUpdate,
    async (report: HealthReport): Promise<RolloutStatus> => {
      await authorized(report.actor, report.claim, `health of ${report.agent}: ${report.ok ? 'ok' : 'failed'}`);
      s.health.push({ agent: report.agent, ok: report.ok, detail: report.detail, actor: report.actor });
      return s;
    },
    {
      validator: (report: HealthReport) => {
        requireActor(report);
        if (req.auto)
          reject('CONFLICT', 'this rollout checks the canary itself (--auto); it takes no health reports', {
            field: 'agent',
            hint: 'start the rollout without --auto to report health by hand',
          });
        if (s.phase !== 'canary' && s.phase !== 'health')
          reject('CONFLICT', `the rollout is not waiting for health reports (phase ${s.phase})`, {
            field: 'agent',
            hint: 'health is reported for the canary, while `agent rollout-status` says canary or health',
          });
        if (!s.canary.includes(report?.agent))
          reject('VALIDATION_FAILED', `agent ${String(report?.agent)} is not a canary of this rollout (canary: ${s.canary.join(', ')})`, {
            field: 'agent',
            hint: 'report the health of a canary agent',
          });
        if (typeof report?.ok !== 'boolean')
          reject('VALIDATION_FAILED', 'ok must be true or false', { field: 'ok', hint: 'pass --ok or --failed' });
      },
    },
  );

  const from = (names: string[]) => names.map((name) => ({ name, from: origin.get(name)! }));
  const move = async (names: string[]): Promise<void> => {
    // Counted as moved before the call: if it fails after committing, the compensation still moves them back.
    s.moved.push(...names);
    s.pending = s.pending.filter((n) => !names.includes(n));
    const { elsewhere } = await agentCatalog.moveAgents({
      workspace: req.workspace,
      agents: from(names),
      snapshotId: req.snapshotId,
      actor: req.actor,
      run,
    });
    s.moved = s.moved.filter((n) => !elsewhere.includes(n));
    s.skipped.push(...elsewhere);
    show();
  };
  /** Every agent this rollout moved goes back to exactly where it came from; idempotent, and not stopped by a cancellation. */
  const moveBack = async (): Promise<void> => {
    if (s.moved.length === 0) return;
    const names = [...s.moved];
    const back = await CancellationScope.nonCancellable(() =>
      agentCatalog.moveAgentsBack({ workspace: req.workspace, agents: from(names), snapshotId: req.snapshotId, actor: req.actor, run }),
    );
    s.movedBack.push(...back.movedBack);
    s.moved = back.stranded;
    if (back.stranded.length)
      s.reason = `${s.reason ? `${s.reason}; ` : ''}${back.stranded.join(', ')} stayed on the new snapshot: the one they came from is no longer active`;
  };
  const finish = async (status: RolloutResult['status'], reason?: string): Promise<RolloutResult> => {
    if (status !== 'completed') {
      enter('rolling-back');
      await moveBack();
    }
    s.reason = [reason, s.reason].filter(Boolean).join('; ') || undefined;
    enter(status);
    await condition(allHandlersFinished);
    return {
      status,
      snapshotId: req.snapshotId,
      moved: s.moved,
      movedBack: s.movedBack,
      already: s.already,
      skipped: s.skipped,
      health: s.health,
      reason: s.reason,
    };
  };
  const aborted = (): string => `aborted${abort?.actor ? ` by ${abort.actor}` : ''}${abort?.reason ? `: ${abort.reason}` : ''}`;

  /** `auto` as runs recorded before the canary ran for real check it: the stored image boots and its entrypoint exits 0. */
  async function bootCheck(snapshot: RolloutSnapshot): Promise<string | undefined> {
    try {
      const { hostId } = await catalog.pickHost({ size: snapshot.size });
      await hostCacheActivities(hostId).cacheSnapshot({ storedRef: snapshot.storedRef!, workspace: req.workspace }); // no-op when cached
      const { output } = await hostGoldenActivities(hostId).verifyBoot({
        image: snapshot.storedRef!,
        entrypoint: snapshot.entrypoint,
        size: snapshot.size,
      });
      s.health.push(
        ...s.canary.map((agent) => ({
          agent,
          ok: true,
          detail: `${snapshot.entrypoint} booted on ${hostId}${output ? `: ${output.slice(-200)}` : ''}`,
          actor: 'auto',
        })),
      );
      return undefined;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const f = describeFailure(err);
      s.health.push(...s.canary.map((agent) => ({ agent, ok: false, detail: `${f.code}: ${f.message}`, actor: 'auto' })));
      return `boot check of ${snapshot.name} failed: ${f.code}: ${f.message}`;
    }
  }

  /**
   * `auto`: the canary runs for real. A sandbox starts from the new snapshot on a host with its entrypoint as the agent
   * process; once that is still up after the settle window, each canary agent's health command runs in it as a job.
   * The sandbox is removed on every path. The reason for a failure carries the job's output or the entrypoint's.
   */
  async function canaryRun(snapshot: RolloutSnapshot): Promise<string | undefined> {
    const { hostId } = await catalog.pickHost({ size: snapshot.size });
    const docker = hostActivities(hostId);
    const storedRef = snapshot.storedRef!;
    let containerId: string | undefined;
    try {
      await hostCacheActivities(hostId).cacheSnapshot({ storedRef, workspace: req.workspace }); // no-op when cached
      const box = await docker.createTempSandbox({
        key: `canary-${workflowId}-${runId}`,
        image: storedRef,
        size: snapshot.size,
        workflowId,
        role: 'temp',
        entrypoint: snapshot.entrypoint,
      });
      containerId = box.containerId;
      await docker.awaitEntrypoint({
        containerId,
        entrypoint: snapshot.entrypoint,
        settleSeconds: CANARY_SETTLE_SECONDS,
        size: snapshot.size,
      });
      let unhealthy: string | undefined;
      for (const agent of s.canary) {
        const command = healthCommands.get(agent) ?? DEFAULT_HEALTH_COMMAND;
        const job = await hostJobActivities(hostId).execInSandbox({ containerId, command });
        const output = `${job.stdout}${job.stderr}`.trim().slice(-500);
        const ok = job.exitCode === 0;
        const detail = `${command.join(' ')} exited ${job.exitCode} in a sandbox of ${snapshot.name} on ${hostId}${output ? `: ${output}` : ''}`;
        s.health.push({ agent, ok, detail, actor: 'auto' });
        unhealthy ??= ok ? undefined : `canary ${agent} is unhealthy: ${detail}`;
      }
      return unhealthy;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const f = describeFailure(err);
      s.health.push(...s.canary.map((agent) => ({ agent, ok: false, detail: `${f.code}: ${f.message}`, actor: 'auto' })));
      return `canary sandbox of ${snapshot.name} failed: ${f.code}: ${f.message}`;
    } finally {
      const started = containerId;
      if (started) await CancellationScope.nonCancellable(() => docker.removeSandbox({ containerId: started }));
    }
  }

  /** A report from every canary, or the first failed one; silence past the timeout counts as unhealthy. */
  async function awaitReports(): Promise<string | undefined> {
    const failed = () => s.health.find((h) => !h.ok);
    const allOk = () => s.canary.every((agent) => s.health.some((h) => h.agent === agent && h.ok));
    const decided = await condition(() => abort !== undefined || failed() !== undefined || allOk(), healthTimeout);
    if (abort) return undefined;
    const bad = failed();
    if (bad) return `canary ${bad.agent} reported unhealthy${bad.detail ? `: ${bad.detail}` : ''}`;
    if (!decided) {
      const silent = s.canary.filter((agent) => !s.health.some((h) => h.agent === agent));
      return `no health report from canary ${silent.join(', ')} within ${String(healthTimeout)}`;
    }
    return undefined;
  }

  try {
    show();
    for (const [field, value] of [
      ['canary', canarySize],
      ['batchSize', batchSize],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1)
        reject('VALIDATION_FAILED', `${field} must be a whole number ≥ 1, not ${String(value)}`, { field, hint: `e.g. ${field}: 1` });
    }
    await access.authorize({
      ...vouch(req.claim),
      actor: req.actor,
      workspace: req.workspace,
      action: 'agent.rollout',
      target: req.snapshotId,
      run,
    });

    enter('resolving');
    const snapshot = await agentCatalog.loadRolloutSnapshot({ workspace: req.workspace, snapshotId: req.snapshotId });
    if (req.auto && !snapshot.storedRef)
      reject('VALIDATION_FAILED', `snapshot ${snapshot.name} is not in snapshot storage, so --auto cannot boot it`, {
        field: 'auto',
        hint: 'report the canary health by hand instead',
      });
    const agents = await agentCatalog.listRolloutAgents({ workspace: req.workspace, agents: req.agents });
    for (const a of agents) {
      origin.set(a.name, a.snapshotId);
      if (a.healthCommand) healthCommands.set(a.name, a.healthCommand);
    }
    s.already = agents.filter((a) => a.snapshotId === req.snapshotId).map((a) => a.name);
    s.pending = agents.filter((a) => a.snapshotId !== req.snapshotId).map((a) => a.name);
    s.canary = s.pending.slice(0, canarySize);
    if (s.pending.length === 0)
      return await finish('completed', agents.length ? 'every agent already runs on this snapshot' : 'no agents to move');

    if (abort) return await finish('aborted', aborted());
    enter('canary');
    await move(s.canary);

    enter('health');
    const unhealthy = req.auto ? await (since.canaryRun() ? canaryRun(snapshot) : bootCheck(snapshot)) : await awaitReports();
    if (abort) return await finish('aborted', aborted());
    if (unhealthy) return await finish('rolled-back', unhealthy);

    enter('rolling');
    while (s.pending.length > 0) {
      await condition(() => !s.paused || abort !== undefined); // pause holds here, between batches
      if (abort) return await finish('aborted', aborted());
      await move(s.pending.slice(0, batchSize));
    }
    return await finish('completed');
  } catch (err) {
    const failure = failureOf(err);
    s.reason = `${failure.code}: ${failure.message}`;
    try {
      await moveBack(); // compensation: a failed rollout leaves every agent where it was
    } catch (undo) {
      s.reason += `; moving ${s.moved.join(', ')} back failed too: ${describeFailure(undo).message}`;
    }
    enter('failed');
    return reject(failure.code, failure.message, failure);
  }
}
