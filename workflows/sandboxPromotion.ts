// Promotion's publishing steps, for the sandbox entity (workflows/sandbox.ts) once it holds the sandbox `promoting`:
// a machine's saved state, or a container's committed and boot-checked image, registered as a workspace golden,
// cached on its host and, when asked, made the default.
import { uuid4 } from '@temporalio/workflow';
import type { HandleClaim } from '../activities/handles';
import type { SavedSession } from '../activities/sandbox/backend';
import { defaults, golden, sandboxCatalog } from './activities';
import type { PromoteRequest, PromoteResult, SandboxCarried, SandboxRequest } from './contracts/sandbox';
import { publishGolden } from './publishGolden';
import { reject } from './failures';
import { ENTRYPOINT_SETTLE_SECONDS, type SessionTarget } from './sandboxRuntime';

export interface Promotion {
  req: SandboxRequest;
  s: SandboxCarried;
  run: { workflowId: string; runId: string };
  /** The profile the golden is registered under (the base's as of the last start). */
  profileKey: string;
  /** What every host call on the sandbox names. */
  claim: HandleClaim;
  /** A QEMU machine: its memory and devices are saved; else the container's files are committed. */
  machines: boolean;
  /** The backend's save of the running sandbox. */
  saveSession: (to: SessionTarget) => Promise<SavedSession>;
  /** The image committed on the host: set once committed, cleared once the host cache keeps it (else the caller removes it). */
  local: { ref?: string };
}

type Stored = { storedRef: string; digest: string; machineProfile?: string };

export async function publishPromotion(p: Promotion, input: PromoteRequest): Promise<PromoteResult> {
  const { req, s } = p;
  const tag = `promote-${req.sandboxId.slice(0, 8)}-${s.jobs}`;
  const register = async (stored: Stored) => {
    const registered = await golden.registerGolden({
      id: uuid4(),
      workspace: req.workspace,
      name: input.name,
      ...stored,
      runtime: req.runtime,
      size: req.size,
      profileKey: p.profileKey,
      origin: 'promote',
      sandboxId: req.sandboxId,
      parentSnapshotId: s.latestSessionSnapshotId,
      run: p.run,
    });
    return registered.snapshotId;
  };
  const { storedRef, registered: snapshotId } = p.machines
    ? await publishMachine(p, tag, register)
    : await publishGolden({
        hostId: s.hostId!,
        containerId: s.containerId!,
        sandbox: p.claim,
        workspace: req.workspace,
        size: req.size,
        tag,
        committed: (ref) => (p.local.ref = ref),
        boot: s.lastStart?.base ? { entrypoint: s.lastStart.base.entrypoint, settleSeconds: ENTRYPOINT_SETTLE_SECONDS } : undefined,
        register,
      });
  await golden.recordHostCache({ hostId: s.hostId!, snapshotIds: [snapshotId] });
  p.local.ref = undefined; // the promoted image stays cached on this host
  const made = input.setDefault
    ? await defaults.setDefault({
        workspace: req.workspace,
        size: req.size,
        profileKey: p.profileKey,
        snapshotId,
        actor: input.actor ?? req.actor,
        reason: `promoted from sandbox ${req.sandboxId}`,
        workflowId: p.run.workflowId,
      })
    : undefined;
  return { snapshotId, name: input.name, storedRef, default: made };
}

/**
 * Promotion of a stopped sandbox: its latest session snapshot, already in snapshot storage, registered as a golden
 * as promotion would after saving; the stored machine is shared, not copied (deleting one keeps what the other uses).
 */
export async function publishStoppedPromotion(p: Promotion, input: PromoteRequest, sessionId: string): Promise<PromoteResult> {
  const { req } = p;
  const session = await sandboxCatalog.loadSessionSnapshot({ snapshotId: sessionId, workspace: req.workspace });
  if (!session.storedRef || !session.digest)
    reject('GOLDEN_STORAGE_NOT_CONFIGURED', `session snapshot ${session.name} is on its host only: a golden must be in snapshot storage`, {
      hint: 'configure snapshot storage (SNAPFLOW_REGISTRY_URL); sessions saved from then on can be promoted while stopped',
    });
  const registered = await golden.registerGolden({
    id: uuid4(),
    workspace: req.workspace,
    name: input.name,
    storedRef: session.storedRef!,
    digest: session.digest!,
    machineProfile: session.machineProfile ?? undefined,
    runtime: req.runtime,
    size: req.size,
    profileKey: p.profileKey,
    origin: 'promote',
    sandboxId: req.sandboxId,
    parentSnapshotId: session.id,
    run: p.run,
  });
  if (session.cachedOn.length) await golden.recordHostCache({ hostId: session.cachedOn[0]!, snapshotIds: [registered.snapshotId] });
  const made = input.setDefault
    ? await defaults.setDefault({
        workspace: req.workspace,
        size: req.size,
        profileKey: p.profileKey,
        snapshotId: registered.snapshotId,
        actor: input.actor ?? req.actor,
        reason: `promoted from stopped sandbox ${req.sandboxId} (session ${session.name})`,
        workflowId: p.run.workflowId,
      })
    : undefined;
  return { snapshotId: registered.snapshotId, name: input.name, storedRef: session.storedRef!, default: made };
}

/** Promotion of a machine: pause, save memory and devices into snapshot storage, resume; then register it. */
async function publishMachine(
  p: Promotion,
  tag: string,
  register: (stored: Stored) => Promise<string>,
): Promise<{ storedRef: string; registered: string }> {
  const saved = await p.saveSession({ repository: `snapflow/golden/${p.req.workspace}`, tag, keepRunning: true, requireStorage: true });
  const stored = { storedRef: saved.storedRef!, digest: saved.digest!, machineProfile: saved.machineProfile };
  return { storedRef: stored.storedRef, registered: await register(stored) };
}
