// `--auto`: the rollout checks its canary itself, on a host, instead of waiting for a health report.
import { CancellationScope, isCancellation } from '@temporalio/workflow';
import type { RolloutSnapshot } from '../activities/agents';
import { describeFailure } from '../lib/errors';
import { hostActivities, hostGoldenActivities, hostJobActivities } from './activities';
import { pickHostFor, placeAndStart, startOn } from './placement';
import type { RolloutStatus } from './contracts/rollout';

/** A canary's entrypoint must still be running this long after its sandbox started. */
const CANARY_SETTLE_SECONDS = 10;
/** What a canary runs when its agent names no health command. */
const DEFAULT_HEALTH_COMMAND = ['true'];

export interface CanaryCheck {
  workspace: string;
  run: { workflowId: string; runId: string };
  /** The rollout's status: its canary agents, and where their health goes. */
  s: RolloutStatus;
  /** Each agent's health command. */
  healthCommands: Map<string, string[]>;
}

/** As runs recorded before the canary ran for real check it: the stored image boots and its entrypoint exits 0. */
export async function bootCheck(c: CanaryCheck, snapshot: RolloutSnapshot): Promise<string | undefined> {
  const { s } = c;
  try {
    const image = { storedRef: snapshot.storedRef!, workspace: c.workspace };
    const { hostId, started } = await placeAndStart(snapshot.size, image, (hostId) =>
      hostGoldenActivities(hostId).verifyBoot({ image: snapshot.storedRef!, entrypoint: snapshot.entrypoint, size: snapshot.size }),
    );
    const { output } = started;
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
 * The canary runs for real. A sandbox starts from the new snapshot on a host with its entrypoint as the agent
 * process; once that is still up after the settle window, each canary agent's health command runs in it as a job.
 * The sandbox is removed on every path. The reason for a failure carries the job's output or the entrypoint's.
 */
export async function canaryRun(c: CanaryCheck, snapshot: RolloutSnapshot): Promise<string | undefined> {
  const { s } = c;
  const { workflowId, runId } = c.run;
  // Picked before the try: no host for it fails the rollout, it says nothing about the canary's health.
  const hostId = await pickHostFor(snapshot.size);
  const docker = hostActivities(hostId);
  const storedRef = snapshot.storedRef!;
  let containerId: string | undefined;
  try {
    const box = await startOn(hostId, { storedRef, workspace: c.workspace }, () =>
      docker.createTempSandbox({
        key: `canary-${workflowId}-${runId}`,
        image: storedRef,
        size: snapshot.size,
        workflowId,
        role: 'temp',
        entrypoint: snapshot.entrypoint,
      }),
    );
    containerId = box.containerId;
    await docker.awaitEntrypoint({
      containerId,
      entrypoint: snapshot.entrypoint,
      settleSeconds: CANARY_SETTLE_SECONDS,
      size: snapshot.size,
    });
    let unhealthy: string | undefined;
    for (const agent of s.canary) {
      const command = c.healthCommands.get(agent) ?? DEFAULT_HEALTH_COMMAND;
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
