import type { HandleClaim } from '../activities/handles';
import type { LogRef } from '../catalog/logs';
import { hostActivities, hostGoldenActivities } from './activities';

export interface PublishGolden<T> {
  hostId: string;
  /** The sandbox whose filesystem becomes the golden image. */
  containerId: string;
  /** The sandbox that container belongs to (a promotion); absent for a build's own scratch sandbox. */
  sandbox?: HandleClaim;
  workspace: string;
  /** The size the image is boot-checked as. */
  size: string;
  tag: string;
  /** Called as soon as the image is committed: the local copy to remove if a later step fails. */
  committed: (localRef: string) => void;
  /** Called after the boot check, before the upload. */
  uploading?: () => void;
  /**
   * A long-lived entrypoint (an image snapshot base's agent process): booted = still running after `settleSeconds`.
   * Absent: the built-in base's /app/start.sh, which must exit 0.
   */
  boot?: { entrypoint: string; settleSeconds: number };
  /** The build log's segment the boot check writes the entrypoint's output and its outcome into. */
  bootLog?: LogRef;
  /** Registers the stored image in the catalog (one or more snapshots); runs only after a good boot and a push. */
  register: (stored: { storedRef: string; digest: string }) => Promise<T>;
}

/**
 * A golden image from a sandbox, as the golden build and promote both make it: commit → verify boot → push →
 * register. A failed boot check stops before anything is uploaded or registered, so the old default stays.
 */
export async function publishGolden<T>(input: PublishGolden<T>): Promise<{ storedRef: string; registered: T }> {
  const docker = hostActivities(input.hostId);
  const entrypoint = input.boot?.entrypoint ?? '/app/start.sh';
  const image = await docker.commitSandbox({
    containerId: input.containerId,
    ...input.sandbox,
    repository: `snapflow/golden/${input.workspace}`,
    tag: input.tag,
    changes: [`CMD ${JSON.stringify([entrypoint])}`],
  });
  input.committed(image.ref);
  await hostGoldenActivities(input.hostId).verifyBoot({
    image: image.ref,
    entrypoint,
    settleSeconds: input.boot?.settleSeconds,
    size: input.size,
    ...(input.bootLog ? { log: input.bootLog } : {}),
  });
  input.uploading?.();
  const stored = await docker.pushImage({ ref: image.ref }); // GOLDEN_STORAGE_NOT_CONFIGURED without storage
  const storedRef = `${image.ref.slice(0, image.ref.lastIndexOf(':'))}@${stored.digest}`;
  return { storedRef, registered: await input.register({ storedRef, digest: stored.digest }) };
}
