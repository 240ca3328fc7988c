import { CancellationScope, ParentClosePolicy, setCurrentDetails, setHandler, sleep, startChild, workflowInfo } from '@temporalio/workflow';
import type { SnapflowErrorShape } from '../lib/errors';
import { workflowIds } from '../lib/ids';
import { agentCatalog, catalog, connections, hostImageActivities, hostImageUpload } from './activities';
import { ENTRYPOINT_SETTLE_SECONDS } from './sandboxRuntime';
import {
  imageSnapshotRequestQuery,
  type AgentRolloutOptions,
  type ImageSnapshotRequest,
  type ImageSnapshotResult,
} from './contracts/imageSnapshot';
import { asFailure, failureOf, reject } from './failures';
import type { rolloutSnapshot } from './rollout';
import { withWorkspace } from './compat';
import { authorize } from './authorize';
import { pickHostFor } from './placement';
import { since } from './legacy';

export const STEPS = ['resolve', 'pull', 'verify', 'boot', 'store'] as const;

/**
 * Resolve → pull on a host → check the entrypoint is there → start it (it must stay up as long as a sandbox's does)
 * → store → active; any failure → failed, typed.
 */
export async function createImageSnapshot(req: ImageSnapshotRequest): Promise<ImageSnapshotResult> {
  req = withWorkspace(req);
  setHandler(imageSnapshotRequestQuery, () => req);
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  const id = req.snapshotId;
  // Before anything is written. Replacing moves what others rely on (defaults, pins, agents): an admin's call.
  if (since.authorization()) {
    await authorize({
      claim: req.claim,
      actor: req.actor,
      workspace: req.workspace,
      action: req.replaces ? 'snapshot.replace' : 'snapshot.create',
      target: req.name,
      run,
    });
    // Only an image snapshot of the same workspace: what points at it moves here once this one is active.
    if (req.replaces) await catalog.checkReplaceable({ id: req.replaces, workspace: req.workspace }).catch(asFailure);
  }
  const created = await catalog.createPendingSnapshot({
    id,
    workspace: req.workspace,
    name: req.name,
    kind: 'image',
    sourceImage: req.imageRef,
    entrypoint: req.entrypoint,
    runtime: req.runtime,
    size: req.size,
    profileKey: req.profileKey,
    origin: 'user',
    parentSnapshotId: req.replaces,
    run,
    actor: req.actor,
  });
  if (created.reused) return { snapshotId: created.snapshotId, status: 'active', reused: true };

  let timedOut = false;
  const work = new CancellationScope();
  const deadline = CancellationScope.nonCancellable(() => sleep(req.deadline ?? '45 minutes')).then(() => {
    timedOut = true;
    work.cancel();
  });
  void deadline; // fires only if the work outlives it; harmless once the workflow has returned
  try {
    return await work.run(() => resolvePullVerifyStore(req, run));
  } catch (err) {
    const failure: SnapflowErrorShape = timedOut
      ? {
          code: 'TIMED_OUT',
          message: `not finished within ${String(req.deadline ?? '45 minutes')}; check the image reference, GitHub connection and entrypoint`,
        }
      : failureOf(err);
    await CancellationScope.nonCancellable(async () => {
      await catalog.markSnapshotFailed({ id, code: failure.code, message: failure.message, run });
      if (failure.code === 'GITHUB_CONNECTION_EXPIRED')
        await connections.markGithubConnection({ workspace: req.workspace, status: 'expired' });
    });
    setCurrentDetails(`**failed**: ${failure.code}: ${failure.message}`);
    return reject(failure.code, failure.message, failure);
  }
}

/** The snapshot's steps, each noted in its build log: resolve the digest, pull it on a host, check and start the entrypoint, store it. */
async function resolvePullVerifyStore(req: ImageSnapshotRequest, run: { workflowId: string; runId: string }): Promise<ImageSnapshotResult> {
  const id = req.snapshotId;
  const step = async (name: (typeof STEPS)[number], message: string): Promise<void> => {
    setCurrentDetails(`**${name}** (${STEPS.indexOf(name) + 1}/${STEPS.length}): ${message}`);
    await catalog.recordSnapshotStep({ id, step: name, message, run });
  };
  let installationId: number | undefined;
  if (req.requiresGithub) installationId = (await connections.requireGithubConnection({ workspace: req.workspace })).installationId;
  const hostId = await pickHostFor(req.size);
  const images = hostImageActivities(hostId);
  const { registry, repository } = req.image;
  const reference = req.image.digest ?? req.image.tag ?? 'latest';

  await step('resolve', `resolving ${req.imageRef}`);
  const { digest } = await images.resolveImage({ registry, repository, reference, installationId });
  const pinned = `${registry}/${repository}@${digest}`;

  await step('pull', `pulling ${pinned} on ${hostId}`);
  const pulled = await images.pullImage({ ref: pinned, registry, installationId, log: buildLog(id, 'pull') });

  await step('verify', `checking that ${req.entrypoint} is executable`);
  await images.verifyEntrypoint({ image: pinned, entrypoint: req.entrypoint, size: req.size });

  if (since.imageBootCheck()) {
    await step('boot', `starting ${req.entrypoint}: up once it still runs after ${ENTRYPOINT_SETTLE_SECONDS} s`);
    await images.bootCheck({
      image: pinned,
      entrypoint: req.entrypoint,
      size: req.size,
      windowSeconds: ENTRYPOINT_SETTLE_SECONDS,
      log: buildLog(id, 'boot'),
    });
  }

  await step('store', 'uploading to snapshot storage');
  // A run recorded before pulls reported their size uploads with the transfer profile's own timeouts.
  const upload = pulled?.bytes === undefined ? images : hostImageUpload(hostId, pulled.bytes);
  const stored = await upload.storeImage({
    source: pinned,
    repository: `snapflow/${req.workspace}/${req.name}`,
    tag: `img-${digest.slice(7, 19)}`,
    log: buildLog(id, 'store'),
  });

  await catalog.markSnapshotActive({ id, resolvedDigest: digest, storedRef: stored.storedRef, run });
  if (req.replaces)
    await catalog.transferReferences({
      fromId: req.replaces,
      toId: id,
      actor: req.actor,
      run,
      agents: req.agentRollout ? 'keep' : 'move',
    });
  const rollout = req.replaces && req.agentRollout ? await handAgentsToRollout(req, req.replaces, req.agentRollout) : undefined;
  setCurrentDetails(
    `**active**: stored as ${stored.storedRef}${rollout ? `; rollout of ${rollout.agents.length} agent(s): ${rollout.workflowId}` : ''}`,
  );
  return { snapshotId: id, status: 'active' as const, reused: false, digest, storedRef: stored.storedRef, rollout };
}

/**
 * The agents still on the replaced snapshot go to a rollout of the new one, which outlives this run (it waits for
 * the canary's health). No agents: no rollout. Its first step checks that the actor may roll out.
 */
async function handAgentsToRollout(
  req: ImageSnapshotRequest,
  fromId: string,
  options: AgentRolloutOptions,
): Promise<{ workflowId: string; agents: string[] } | undefined> {
  const agents = await agentCatalog.agentsOnSnapshot({ workspace: req.workspace, snapshotId: fromId });
  if (agents.length === 0) return undefined;
  const workflowId = workflowIds.rollout(req.workspace, req.snapshotId);
  await startChild<typeof rolloutSnapshot>('rolloutSnapshot', {
    workflowId,
    parentClosePolicy: ParentClosePolicy.ABANDON,
    args: [
      {
        workspace: req.workspace,
        snapshotId: req.snapshotId,
        agents,
        ...options,
        canary: Math.min(options.canary ?? 1, agents.length),
        actor: req.actor,
      },
    ],
    staticSummary: `Rollout of **${req.name}** to the ${agents.length} agent(s) of the snapshot it replaces (${req.workspace})`,
  });
  return { workflowId, agents };
}

/** The segment of a snapshot's build log a host step writes its output into, after the step's own note. */
function buildLog(snapshotId: string, step: 'pull' | 'boot' | 'store') {
  // Mirrors catalog/logs.ts snapshotLogRef (workflows cannot import the catalog): segment × 2^24, + 1.
  const segment = { pull: 3, boot: 6, store: 7 }[step];
  return { id: `snapshot:${snapshotId}`, kind: 'snapshot' as const, subject: snapshotId, seqBase: segment * 2 ** 24 + 1 };
}
