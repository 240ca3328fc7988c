import type { Duration } from '@temporalio/common';
import { ApplicationFailure, CancellationScope, isCancellation, setCurrentDetails, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import { describeFailure, type ErrorCode } from '../lib/errors';
import type { ValidatedImageSnapshot } from '../lib/validation';
import { catalog, connections, hostImageActivities } from './activities';
import { imageSnapshotRequestQuery } from './definitions';

/** A validated create (lib/validation.ts) plus what the client decided before starting the run. */
export interface ImageSnapshotRequest extends ValidatedImageSnapshot {
  /** Chosen by the client, so it can answer with the id at once while the run is still `pending`. */
  snapshotId: string;
  /** The image lives on the GHCR host: a live GitHub connection is required. */
  requiresGithub: boolean;
  /** `--replace`: the snapshot whose defaults and pins move to this one once it is active. */
  replaces?: string;
  actor: string;
  /** The run's own deadline; past it the snapshot fails with TIMED_OUT instead of staying `pending`. */
  deadline?: Duration;
}

export interface ImageSnapshotResult {
  snapshotId: string;
  status: 'active';
  reused: boolean;
  digest?: string;
  storedRef?: string;
}

export const STEPS = ['resolve', 'pull', 'verify', 'store'] as const;

/** Seed 000: resolve → pull on a host → boot-check the entrypoint → store → active; any failure → failed, typed. */
export async function createImageSnapshot(req: ImageSnapshotRequest): Promise<ImageSnapshotResult> {
  setHandler(imageSnapshotRequestQuery, () => req);
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  const id = req.snapshotId;
  const created = await catalog.createPendingSnapshot({
    id,
    scope: req.scope,
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

  const step = async (name: (typeof STEPS)[number], message: string): Promise<void> => {
    setCurrentDetails(`**${name}** (${STEPS.indexOf(name) + 1}/${STEPS.length}): ${message}`);
    await catalog.recordSnapshotStep({ id, step: name, message, run });
  };

  let timedOut = false;
  let installationId: number | undefined;
  const work = new CancellationScope();
  const deadline = CancellationScope.nonCancellable(() => sleep(req.deadline ?? '45 minutes')).then(() => {
    timedOut = true;
    work.cancel();
  });
  void deadline; // fires only if the work outlives it; harmless once the workflow has returned
  try {
    return await work.run(async () => {
      if (req.requiresGithub) installationId = (await connections.requireGithubConnection({ scope: req.scope })).installationId;
      const { hostId } = await catalog.pickHost({ size: req.size });
      const images = hostImageActivities(hostId);
      const { registry, repository } = req.image;
      const reference = req.image.digest ?? req.image.tag ?? 'latest';

      await step('resolve', `resolving ${req.imageRef}`);
      const { digest } = await images.resolveImage({ registry, repository, reference, installationId });
      const pinned = `${registry}/${repository}@${digest}`;

      await step('pull', `pulling ${pinned} on ${hostId}`);
      await images.pullImage({ ref: pinned, registry, installationId });

      await step('verify', `checking that ${req.entrypoint} is executable`);
      await images.verifyEntrypoint({ image: pinned, entrypoint: req.entrypoint });

      await step('store', 'uploading to snapshot storage');
      const stored = await images.storeImage({ source: pinned, repository: `snapflow/${req.scope}/${req.name}`, tag: `img-${digest.slice(7, 19)}` });

      await catalog.markSnapshotActive({ id, resolvedDigest: digest, storedRef: stored.storedRef, run });
      if (req.replaces) await catalog.transferReferences({ fromId: req.replaces, toId: id, actor: req.actor, run });
      setCurrentDetails(`**active**: stored as ${stored.storedRef}`);
      return { snapshotId: id, status: 'active' as const, reused: false, digest, storedRef: stored.storedRef };
    });
  } catch (err) {
    const failure = timedOut
      ? { code: 'TIMED_OUT' as ErrorCode, message: `not finished within ${String(req.deadline ?? '45 minutes')}; check the image reference, GitHub connection and entrypoint` }
      : isCancellation(err)
        ? { code: 'CANCELLED' as ErrorCode, message: 'cancelled by an operator' }
        : describeFailure(err);
    await CancellationScope.nonCancellable(async () => {
      await catalog.markSnapshotFailed({ id, code: failure.code, message: failure.message, run });
      if (failure.code === 'GITHUB_CONNECTION_EXPIRED') await connections.markGithubConnection({ scope: req.scope, status: 'expired' });
    });
    setCurrentDetails(`**failed**: ${failure.code}: ${failure.message}`);
    throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true, details: [{ field: failure.field, hint: failure.hint }] });
  }
}
