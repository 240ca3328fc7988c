import type { Duration } from '@temporalio/common';
import { ApplicationFailure, CancellationScope, allHandlersFinished, condition, isCancellation, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { RolloutSnapshot } from '../activities/agents';
import { describeFailure, type ErrorCode } from '../lib/errors';
import { access, agentCatalog, catalog, hostCacheActivities, hostGoldenActivities } from './activities';
import { abortRolloutSignal, pauseRolloutSignal, reportHealthUpdate, resumeRolloutSignal, rolloutStatusQuery } from './definitions';

export interface RolloutRequest {
  scope: string;
  snapshotId: string;
  /** Agent names in rollout order (the first `canary` of them are the canary), or every agent of the workspace. */
  agents: string[] | 'all';
  /** Agents moved first and checked before anyone else moves (default 1). */
  canary?: number;
  /** Agents moved per batch after a healthy canary (default 2). */
  batchSize?: number;
  /** How long to wait for the canary's health (default 10 minutes); silence counts as unhealthy. */
  healthTimeout?: Duration;
  /** Check the canary's health by booting the snapshot's stored image on a host, instead of waiting for a report. */
  auto?: boolean;
  actor: string;
}

export interface HealthReport {
  agent: string;
  ok: boolean;
  detail?: string;
  actor?: string;
}

/** Who paused, resumed or aborted, and why (shown in the status and the result). */
export interface RolloutControl {
  actor?: string;
  reason?: string;
}

export type RolloutPhase = 'authorizing' | 'resolving' | 'canary' | 'health' | 'rolling' | 'rolling-back' | 'completed' | 'rolled-back' | 'aborted' | 'failed';

export interface RolloutStatus {
  snapshotId: string;
  phase: RolloutPhase;
  canary: string[];
  /** On the snapshot because this rollout moved them (and not moved back). */
  moved: string[];
  /** Still to move. */
  pending: string[];
  /** Already on the snapshot when the rollout began: never moved, never moved back. */
  already: string[];
  movedBack: string[];
  paused: boolean;
  health: HealthReport[];
  /** Why it was rolled back, aborted or failed. */
  reason?: string;
}

export interface RolloutResult {
  status: 'completed' | 'rolled-back' | 'aborted';
  snapshotId: string;
  moved: string[];
  movedBack: string[];
  already: string[];
  health: HealthReport[];
  reason?: string;
}

const reject = (code: ErrorCode, message: string, field?: string, hint?: string): never => {
  throw ApplicationFailure.create({ type: code, message, nonRetryable: true, details: [{ field, hint }] });
};

/**
 * Issue 8: authorize → resolve the agents → move the canary → wait for its health (a report, or `auto`: boot the
 * stored image) → move the rest in batches, honouring pause / resume / abort between them. An unhealthy or silent
 * canary is moved back and the result says `rolled-back` with the reason; an abort moves every moved agent back.
 * Only real errors fail the run, and then too every agent it moved goes back first.
 */
export async function rolloutSnapshot(req: RolloutRequest): Promise<RolloutResult> {
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  const canarySize = req.canary ?? 1;
  const batchSize = req.batchSize ?? 2;
  const healthTimeout = req.healthTimeout ?? '10 minutes';
  const s: RolloutStatus = { snapshotId: req.snapshotId, phase: 'authorizing', canary: [], moved: [], pending: [], already: [], movedBack: [], paused: false, health: [] };
  let abort: RolloutControl | undefined;

  const show = (): void => {
    const total = s.moved.length + s.pending.length + s.movedBack.length;
    setCurrentDetails(`**${s.phase}**${s.paused ? ' (paused)' : ''} · ${s.moved.length}/${total} moved${s.canary.length ? ` · canary ${s.canary.join(', ')}` : ''}${s.reason ? `\n\n${s.reason}` : ''}`);
  };
  const enter = (phase: RolloutPhase): void => {
    s.phase = phase;
    show();
  };

  setHandler(rolloutStatusQuery, () => s);
  setHandler(pauseRolloutSignal, () => {
    s.paused = true;
    show();
  });
  setHandler(resumeRolloutSignal, () => {
    s.paused = false;
    show();
  });
  setHandler(abortRolloutSignal, (control: RolloutControl) => {
    abort ??= control ?? {};
  });
  setHandler(
    reportHealthUpdate,
    (report: HealthReport): RolloutStatus => {
      s.health.push({ agent: report.agent, ok: report.ok, detail: report.detail, actor: report.actor });
      return s;
    },
    {
      validator: (report: HealthReport) => {
        if (req.auto) reject('CONFLICT', 'this rollout checks the canary itself (--auto); it takes no health reports', 'agent', 'start the rollout without --auto to report health by hand');
        if (s.phase !== 'canary' && s.phase !== 'health') reject('CONFLICT', `the rollout is not waiting for health reports (phase ${s.phase})`, 'agent', 'health is reported for the canary, while `agent rollout-status` says canary or health');
        if (!s.canary.includes(report?.agent)) reject('VALIDATION_FAILED', `agent ${String(report?.agent)} is not a canary of this rollout (canary: ${s.canary.join(', ')})`, 'agent', 'report the health of a canary agent');
        if (typeof report.ok !== 'boolean') reject('VALIDATION_FAILED', 'ok must be true or false', 'ok', 'pass --ok or --failed');
      },
    },
  );

  const move = async (names: string[]): Promise<void> => {
    await agentCatalog.moveAgents({ scope: req.scope, names, snapshotId: req.snapshotId, actor: req.actor, run });
    s.moved.push(...names);
    s.pending = s.pending.filter((n) => !names.includes(n));
    show();
  };
  /** Every agent this rollout moved goes back where it came from; idempotent, and not stopped by a cancellation. */
  const moveBack = async (): Promise<void> => {
    if (s.moved.length === 0) return;
    const names = [...s.moved];
    await CancellationScope.nonCancellable(() => agentCatalog.moveAgentsBack({ scope: req.scope, names, snapshotId: req.snapshotId, actor: req.actor, run }));
    s.movedBack.push(...names);
    s.moved = [];
  };
  const finish = async (status: RolloutResult['status'], reason?: string): Promise<RolloutResult> => {
    if (status !== 'completed') {
      enter('rolling-back');
      await moveBack();
    }
    s.reason = reason;
    enter(status);
    await condition(allHandlersFinished);
    return { status, snapshotId: req.snapshotId, moved: s.moved, movedBack: s.movedBack, already: s.already, health: s.health, reason };
  };
  const aborted = (): string => `aborted${abort?.actor ? ` by ${abort.actor}` : ''}${abort?.reason ? `: ${abort.reason}` : ''}`;

  /** `auto`: the canary is healthy when the snapshot's stored image boots and its entrypoint exits 0 on a host. */
  async function bootCheck(snapshot: RolloutSnapshot): Promise<string | undefined> {
    try {
      const { hostId } = await catalog.pickHost({ size: snapshot.size });
      await hostCacheActivities(hostId).cacheSnapshot({ storedRef: snapshot.storedRef! }); // no-op when cached
      const { output } = await hostGoldenActivities(hostId).verifyBoot({ image: snapshot.storedRef!, entrypoint: snapshot.entrypoint });
      s.health.push(...s.canary.map((agent) => ({ agent, ok: true, detail: `${snapshot.entrypoint} booted on ${hostId}${output ? `: ${output.slice(-200)}` : ''}`, actor: 'auto' })));
      return undefined;
    } catch (err) {
      if (isCancellation(err)) throw err;
      const f = describeFailure(err);
      s.health.push(...s.canary.map((agent) => ({ agent, ok: false, detail: `${f.code}: ${f.message}`, actor: 'auto' })));
      return `boot check of ${snapshot.name} failed: ${f.code}: ${f.message}`;
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
    await access.authorize({ actor: req.actor, scope: req.scope, action: 'agent.rollout', target: req.snapshotId, run });

    enter('resolving');
    const snapshot = await agentCatalog.loadRolloutSnapshot({ scope: req.scope, snapshotId: req.snapshotId });
    if (req.auto && !snapshot.storedRef) reject('VALIDATION_FAILED', `snapshot ${snapshot.name} is not in snapshot storage, so --auto cannot boot it`, 'auto', 'report the canary health by hand instead');
    const agents = await agentCatalog.listRolloutAgents({ scope: req.scope, agents: req.agents });
    s.already = agents.filter((a) => a.snapshotId === req.snapshotId).map((a) => a.name);
    s.pending = agents.filter((a) => a.snapshotId !== req.snapshotId).map((a) => a.name);
    s.canary = s.pending.slice(0, canarySize);
    if (s.pending.length === 0) return await finish('completed', agents.length ? 'every agent already runs on this snapshot' : 'no agents to move');

    if (abort) return await finish('aborted', aborted());
    enter('canary');
    await move(s.canary);

    enter('health');
    const unhealthy = req.auto ? await bootCheck(snapshot) : await awaitReports();
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
    const failure = isCancellation(err) ? { code: 'CANCELLED' as const, message: 'cancelled by an operator', hint: undefined, field: undefined } : describeFailure(err);
    s.reason = `${failure.code}: ${failure.message}`;
    try {
      await moveBack(); // compensation: a failed rollout leaves every agent where it was
    } catch (undo) {
      s.reason += `; moving ${s.moved.join(', ')} back failed too: ${describeFailure(undo).message}`;
    }
    enter('failed');
    throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true, details: [{ field: failure.field, hint: failure.hint }] });
  }
}
