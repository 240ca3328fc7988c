import { CancellationScope, allHandlersFinished, condition, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { RolloutSnapshot } from '../activities/agents';
import { describeFailure } from '../lib/errors';
import { agentCatalog } from './activities';
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
import { authorize } from './authorize';
import type { ActorClaim } from '../lib/actorClaim';
import { since } from './legacy';
import { bootCheck, canaryRun, type CanaryCheck } from './rolloutCanary';

const TERMINAL: readonly RolloutPhase[] = ['completed', 'rolled-back', 'aborted', 'failed'];

/** One rollout's state, its handlers and its steps; `rolloutSnapshot` below runs them in order. */
class Rollout {
  readonly s: RolloutStatus = {
    snapshotId: '',
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
  abort: RolloutControl | undefined;
  readonly run: { workflowId: string; runId: string };
  readonly canarySize: number;
  readonly batchSize: number;
  readonly healthTimeout: NonNullable<RolloutRequest['healthTimeout']>;
  /** The snapshot each agent was on when the rollout began: moves and moves back go from and to exactly that. */
  private readonly origin = new Map<string, string>();
  /** Each agent's health command, for `auto`. */
  private readonly healthCommands = new Map<string, string[]>();

  constructor(readonly req: RolloutRequest) {
    const { workflowId, runId } = workflowInfo();
    this.run = { workflowId, runId };
    this.s.snapshotId = req.snapshotId;
    this.canarySize = req.canary ?? 1;
    this.batchSize = req.batchSize ?? 2;
    this.healthTimeout = req.healthTimeout ?? '10 minutes';
  }

  show(): void {
    const s = this.s;
    const total = s.moved.length + s.pending.length + s.movedBack.length;
    setCurrentDetails(
      `**${s.phase}**${s.paused ? ' (paused)' : ''} · ${s.moved.length}/${total} moved${s.canary.length ? ` · canary ${s.canary.join(', ')}` : ''}${s.reason ? `\n\n${s.reason}` : ''}`,
    );
  }

  enter(phase: RolloutPhase): void {
    this.s.phase = phase;
    this.show();
  }

  /** The status query, pause / resume / abort, and health reports. */
  listen(): void {
    setHandler(rolloutStatusQuery, () => this.s);
    const control = (verb: 'pause' | 'resume' | 'abort', apply: (c: RolloutControl) => void) => ({
      handler: async (c: RolloutControl): Promise<RolloutStatus> => {
        await this.authorized(c.actor, c.claim, `${verb}${c.reason ? ` (${c.reason})` : ''}`);
        if (!TERMINAL.includes(this.s.phase)) apply(c);
        this.show();
        return this.s;
      },
      validator: (call: RolloutControl) => this.requireActor(call),
    });
    const pause = control('pause', () => (this.s.paused = true));
    const resume = control('resume', () => (this.s.paused = false));
    const stop = control('abort', (c) => (this.abort ??= c));
    setHandler(pauseRolloutUpdate, pause.handler, { validator: pause.validator });
    setHandler(resumeRolloutUpdate, resume.handler, { validator: resume.validator });
    setHandler(abortRolloutUpdate, stop.handler, { validator: stop.validator });
    setHandler(reportHealthUpdate, (report) => this.reportHealth(report), { validator: (report) => this.validateReport(report) });
  }

  async reportHealth(report: HealthReport): Promise<RolloutStatus> {
    await this.authorized(report.actor, report.claim, `health of ${report.agent}: ${report.ok ? 'ok' : 'failed'}`);
    this.s.health.push({ agent: report.agent, ok: report.ok, detail: report.detail, actor: report.actor });
    return this.s;
  }

  validateReport(report: HealthReport): void {
    const s = this.s;
    this.requireActor(report);
    if (this.req.auto)
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
  }

  /** Every control and report is decided against the workspace's roles here, so a direct Update is held to them too. */
  private async authorized(actor: string, claim: ActorClaim | undefined, what: string): Promise<void> {
    try {
      await authorize({
        claim,
        actor,
        workspace: this.req.workspace,
        action: 'agent.rollout',
        target: `${this.req.snapshotId}: ${what}`,
        run: this.run,
      });
    } catch (err) {
      asFailure(err);
    }
  }

  private requireActor(call: { actor?: unknown } | undefined): void {
    if (typeof call?.actor !== 'string' || call.actor.length === 0)
      reject('VALIDATION_FAILED', 'the request names no actor', { field: 'actor', hint: 'send who asks: { actor: "alice@example.com" }' });
    if (TERMINAL.includes(this.s.phase))
      reject('CONFLICT', `the rollout already ended (${this.s.phase})`, {
        field: 'snapshot',
        hint: 'see how it ended: `snapflow agent rollout-status`',
      });
  }

  /** The request's numbers are sane and its actor may roll out in the workspace. */
  async authorize(): Promise<void> {
    const { req } = this;
    for (const [field, value] of [
      ['canary', this.canarySize],
      ['batchSize', this.batchSize],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1)
        reject('VALIDATION_FAILED', `${field} must be a whole number ≥ 1, not ${String(value)}`, { field, hint: `e.g. ${field}: 1` });
    }
    await authorize({
      claim: req.claim,
      actor: req.actor,
      workspace: req.workspace,
      action: 'agent.rollout',
      target: req.snapshotId,
      run: this.run,
    });
  }

  /** The snapshot and the agents to move: the canary first, then the rest; `already` those on it. */
  async resolve(): Promise<{ snapshot: RolloutSnapshot; agents: number }> {
    const { req, s } = this;
    const snapshot = await agentCatalog.loadRolloutSnapshot({ workspace: req.workspace, snapshotId: req.snapshotId });
    if (req.auto && !snapshot.storedRef)
      reject('VALIDATION_FAILED', `snapshot ${snapshot.name} is not in snapshot storage, so --auto cannot boot it`, {
        field: 'auto',
        hint: 'report the canary health by hand instead',
      });
    const agents = await agentCatalog.listRolloutAgents({ workspace: req.workspace, agents: req.agents });
    for (const a of agents) {
      this.origin.set(a.name, a.snapshotId);
      if (a.healthCommand) this.healthCommands.set(a.name, a.healthCommand);
    }
    s.already = agents.filter((a) => a.snapshotId === req.snapshotId).map((a) => a.name);
    s.pending = agents.filter((a) => a.snapshotId !== req.snapshotId).map((a) => a.name);
    s.canary = s.pending.slice(0, this.canarySize);
    return { snapshot, agents: agents.length };
  }

  /** The canary's health: `auto` checks it on a host, otherwise reports are awaited. */
  health(snapshot: RolloutSnapshot): Promise<string | undefined> {
    if (!this.req.auto) return this.awaitReports();
    const check: CanaryCheck = { workspace: this.req.workspace, run: this.run, s: this.s, healthCommands: this.healthCommands };
    return since.canaryRun() ? canaryRun(check, snapshot) : bootCheck(check, snapshot);
  }

  /** A report from every canary, or the first failed one; silence past the timeout counts as unhealthy. */
  private async awaitReports(): Promise<string | undefined> {
    const s = this.s;
    const failed = () => s.health.find((h) => !h.ok);
    const allOk = () => s.canary.every((agent) => s.health.some((h) => h.agent === agent && h.ok));
    const decided = await condition(() => this.abort !== undefined || failed() !== undefined || allOk(), this.healthTimeout);
    if (this.abort) return undefined;
    const bad = failed();
    if (bad) return `canary ${bad.agent} reported unhealthy${bad.detail ? `: ${bad.detail}` : ''}`;
    if (!decided) {
      const silent = s.canary.filter((agent) => !s.health.some((h) => h.agent === agent));
      return `no health report from canary ${silent.join(', ')} within ${String(this.healthTimeout)}`;
    }
    return undefined;
  }

  private from(names: string[]) {
    return names.map((name) => ({ name, from: this.origin.get(name)! }));
  }

  async move(names: string[]): Promise<void> {
    const { req, s } = this;
    // Counted as moved before the call: if it fails after committing, the compensation still moves them back.
    s.moved.push(...names);
    s.pending = s.pending.filter((n) => !names.includes(n));
    const { elsewhere } = await agentCatalog.moveAgents({
      workspace: req.workspace,
      agents: this.from(names),
      snapshotId: req.snapshotId,
      actor: req.actor,
      run: this.run,
    });
    s.moved = s.moved.filter((n) => !elsewhere.includes(n));
    s.skipped.push(...elsewhere);
    this.show();
  }

  /** Every agent this rollout moved goes back to exactly where it came from; idempotent, and not stopped by a cancellation. */
  async moveBack(): Promise<void> {
    const { req, s } = this;
    if (s.moved.length === 0) return;
    const agents = this.from([...s.moved]);
    const back = await CancellationScope.nonCancellable(() =>
      agentCatalog.moveAgentsBack({ workspace: req.workspace, agents, snapshotId: req.snapshotId, actor: req.actor, run: this.run }),
    );
    s.movedBack.push(...back.movedBack);
    s.moved = back.stranded;
    if (back.stranded.length)
      s.reason = `${s.reason ? `${s.reason}; ` : ''}${back.stranded.join(', ')} stayed on the new snapshot: the one they came from is no longer active`;
  }

  async finish(status: RolloutResult['status'], reason?: string): Promise<RolloutResult> {
    const s = this.s;
    if (status !== 'completed') {
      this.enter('rolling-back');
      await this.moveBack();
    }
    s.reason = [reason, s.reason].filter(Boolean).join('; ') || undefined;
    this.enter(status);
    await condition(allHandlersFinished);
    const { moved, movedBack, already, skipped, health } = s;
    return { status, snapshotId: this.req.snapshotId, moved, movedBack, already, skipped, health, reason: s.reason };
  }

  aborted(): string {
    const abort = this.abort;
    return `aborted${abort?.actor ? ` by ${abort.actor}` : ''}${abort?.reason ? `: ${abort.reason}` : ''}`;
  }

  /** Compensation: a failed rollout leaves every agent where it was, then fails with the reason. */
  async fail(err: unknown): Promise<never> {
    const s = this.s;
    const failure = failureOf(err);
    s.reason = `${failure.code}: ${failure.message}`;
    try {
      await this.moveBack();
    } catch (undo) {
      s.reason += `; moving ${s.moved.join(', ')} back failed too: ${describeFailure(undo).message}`;
    }
    this.enter('failed');
    return reject(failure.code, failure.message, failure);
  }
}

/**
 * Authorize → resolve the agents → move the canary → wait for its health (a report, or `auto`: run the canary in
 * a sandbox of the new snapshot) → move the rest in batches, honouring pause / resume / abort between them. An unhealthy or silent
 * canary is moved back and the result says `rolled-back` with the reason; an abort moves every moved agent back.
 * Only real errors fail the run, and then too every agent it moved goes back first.
 */
export async function rolloutSnapshot(req: RolloutRequest): Promise<RolloutResult> {
  const r = new Rollout(withWorkspace(req));
  const s = r.s;
  r.listen();
  try {
    r.show();
    await r.authorize();

    r.enter('resolving');
    const { snapshot, agents } = await r.resolve();
    if (s.pending.length === 0)
      return await r.finish('completed', agents ? 'every agent already runs on this snapshot' : 'no agents to move');

    if (r.abort) return await r.finish('aborted', r.aborted());
    r.enter('canary');
    await r.move(s.canary);

    r.enter('health');
    const unhealthy = await r.health(snapshot);
    if (r.abort) return await r.finish('aborted', r.aborted());
    if (unhealthy) return await r.finish('rolled-back', unhealthy);

    r.enter('rolling');
    while (s.pending.length > 0) {
      await condition(() => !s.paused || r.abort !== undefined); // pause holds here, between batches
      if (r.abort) return await r.finish('aborted', r.aborted());
      await r.move(s.pending.slice(0, r.batchSize));
    }
    return await r.finish('completed');
  } catch (err) {
    return r.fail(err);
  }
}
