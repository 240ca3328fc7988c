// Restore resolution (see README, Sandboxes): where a sandbox run starts from, and why
// it did not start from anything earlier in the order. Pure and deterministic: the input is plain data that
// catalog/restore.ts loads in one query, so workflows may call this too. No I/O, no Node builtins, no clock.
import type { HostStatus, SandboxClass, SandboxState, SnapshotKind, SnapshotStatus } from './vocabulary';
import { SYSTEM_SCOPE } from './ids';
import { machineDifference } from './machineProfile';
import { BASE_IMAGE_REF, splitProfileKey } from './presets';

/** The sandbox row fields the order looks at, plus the status of the host it lives on. */
export interface RestoreSandbox {
  id: string;
  workspace: string;
  class: SandboxClass;
  size: string;
  /**
   * The current runtime profile: resume and golden selection need a snapshot built for exactly this. For a sandbox
   * started from an image snapshot or an agent it is computed from that base's digest as it is now.
   */
  profileKey: string;
  keepAlive: boolean;
  state: SandboxState;
  hostId: string | null;
  hostStatus: HostStatus | null;
  containerId: string | null;
  issueId: string | null;
  /** The machine profile each eligible host (online, or the fixed one) restores a saved vm of this size onto. */
  machines?: Record<string, string>;
}

/** A snapshot the order may start from. */
export interface RestoreCandidate {
  id: string;
  workspace: string;
  name: string;
  kind: SnapshotKind;
  status: SnapshotStatus;
  profileKey: string;
  /** Set once the snapshot is in snapshot storage; any host can pull it from there. */
  storedRef: string | null;
  /** What a host-cached copy is started by when the snapshot was never uploaded. */
  sourceImage: string | null;
  /** Hosts holding a copy (online ones, plus the fixed host whatever its status), sorted. */
  cachedOn: string[];
  /** Set for a saved machine (a vm sandbox's memory and devices): the machine profile it restores onto only. */
  machineProfile?: string | null;
  /** The sandbox that saved it (a session snapshot): another sandbox's session is where a fork started. */
  sandboxId?: string | null;
}

/**
 * The image snapshot a sandbox starts from instead of the built-in base: the one it was created from, or its agent's
 * snapshot as it is now. `storedRef` (registry/repo@sha256:…, in snapshot storage) is what a host pulls and starts.
 */
export interface RestoreBase {
  snapshotId: string;
  name: string;
  storedRef: string;
  /** Run as the sandbox's long-lived agent process, whatever step of the order it starts from. */
  entrypoint: string;
  /** The agent the sandbox follows, when it was created for one. */
  agent: string | null;
}

export interface RestoreInput {
  sandbox: RestoreSandbox;
  /** Null: the built-in base. */
  base?: RestoreBase | null;
  /**
   * The host the run must use, when the caller has fixed one: only a copy cached there counts. Without it the
   * decision prefers the sandbox's own host (when online), then any online host holding a copy.
   * A running keep-alive sandbox is reused on its own host either way.
   */
  hostId?: string | null;
  /** What sandboxes.latest_session_snapshot_id points at. */
  session: RestoreCandidate | null;
  /** `sandbox fork`: the source's session it was made from (a container fork starts from it; absent: not a fork). */
  fork?: RestoreCandidate | null;
  /** Pinned on the sandbox's issue. */
  pin: RestoreCandidate | null;
  /** Default pointer for (sandbox workspace, size, profile). */
  workspaceDefault: RestoreCandidate | null;
  /** Default pointer for (system, size, profile). */
  systemDefault: RestoreCandidate | null;
}

export const RESTORE_SOURCES = ['running', 'session', 'golden-pin', 'golden-workspace', 'golden-system', 'base'] as const;
export type RestoreSource = (typeof RESTORE_SOURCES)[number];
export type RestoreStep = Exclude<RestoreSource, 'base'>;

export const SKIP_REASONS = [
  'keep-alive-off',
  'not-running',
  'no-container',
  'host-offline',
  'container-class',
  'no-session-snapshot',
  'no-pin',
  'no-workspace-default',
  'no-system-default',
  'wrong-kind',
  'wrong-workspace',
  'not-active',
  'incompatible-profile',
  'base-changed',
  'machine-changed',
  'pin-incompatible',
  'not-available',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export interface RestoreSkip {
  step: RestoreStep;
  reason: SkipReason;
  /** One sentence a person can act on. */
  detail: string;
}

/** What a decision says about the base besides its image: absent for the built-in base. */
export interface DecisionBase {
  /** The profile the sandbox runs once started (the base's digest is in it). */
  profileKey?: string;
  base?: RestoreBase;
}

/** The sandbox and session snapshot a fork started from. */
export interface ForkOrigin {
  sandboxId: string;
  snapshotId: string;
  name: string;
}

/** "session snapshot <name> of sandbox <source> (a fork)": where a fork's start came from. */
export function describeFork(f: ForkOrigin): string {
  return `session snapshot ${f.name} of sandbox ${f.sandboxId} (a fork)`;
}

/** The fork origin of a session candidate saved by another sandbox than `sandboxId`. */
function forkOrigin(c: RestoreCandidate, sandboxId: string): { forkedFrom: ForkOrigin } | Record<string, never> {
  return c.sandboxId && c.sandboxId !== sandboxId ? { forkedFrom: { sandboxId: c.sandboxId, snapshotId: c.id, name: c.name } } : {};
}

/**
 * Where the run starts. A running sandbox is reused as it is (no image); every other source names the image
 * to start and, for snapshots, which one (by id and name).
 */
export type RestoreDecision = DecisionBase &
  (
    | { source: 'running'; hostId: string; containerId: string; skipped: RestoreSkip[] }
    | {
        source: Exclude<RestoreStep, 'running'>;
        snapshotId: string;
        name?: string;
        imageRef: string;
        hostId?: string;
        /** The snapshot is a saved machine: the run restores it (on a host of this profile) instead of booting. */
        machineProfile?: string;
        /** The session is another sandbox's: this sandbox was forked from it (`sandbox fork`). */
        forkedFrom?: ForkOrigin;
        skipped: RestoreSkip[];
      }
    | { source: 'base'; imageRef: string; snapshotId?: string; name?: string; hostId?: string; skipped: RestoreSkip[] }
  );

/** States in which a sandbox's container is up and can take the next job (the entity workflow queues it). */
const LIVE_STATES: readonly SandboxState[] = ['idle', 'busy', 'snapshotting', 'promoting'];

type Skip = { ok: false; reason: SkipReason; detail: string };
type Verdict = { ok: true; imageRef: string; hostId?: string; machineProfile?: string } | Skip;
const skip = (reason: SkipReason, detail: string): Skip => ({ ok: false, reason, detail });

function runningVerdict(box: RestoreSandbox): { ok: true; hostId: string; containerId: string } | Skip {
  if (!box.keepAlive) return skip('keep-alive-off', `sandbox ${box.id} does not have keep-alive on`);
  if (!LIVE_STATES.includes(box.state)) return skip('not-running', `sandbox ${box.id} is ${box.state}, not running`);
  if (!box.containerId || !box.hostId) return skip('no-container', `sandbox ${box.id} is ${box.state} but has no container on record`);
  if (box.hostStatus !== 'online')
    return skip('host-offline', `sandbox ${box.id} runs on host ${box.hostId}, which is ${box.hostStatus ?? 'unknown'}`);
  return { ok: true, hostId: box.hostId, containerId: box.containerId };
}

/** Hosts as the order sees them: the one the caller fixed, if any, and the sandbox's own host while it is online. */
interface HostChoice {
  fixed: string | null;
  preferred: string | null;
}

/** Checks shared by every snapshot step, in the order a person would look: what, whose, state, fit, where. */
function candidateVerdict(
  c: RestoreCandidate,
  want: {
    kind: SnapshotKind;
    workspaces: string[];
    profileKey: string;
    hosts: HostChoice;
    incompatible: SkipReason;
    machines: Record<string, string>;
  },
): Verdict {
  const label = `${c.kind} snapshot ${c.name} (${c.id})`;
  if (c.kind !== want.kind) return skip('wrong-kind', `${label} is not a ${want.kind} snapshot`);
  if (!want.workspaces.includes(c.workspace))
    return skip('wrong-workspace', `${label} belongs to ${c.workspace}, not ${want.workspaces.join(' or ')}`);
  if (c.status !== 'active') return skip('not-active', `${label} is ${c.status}`);
  if (c.profileKey !== want.profileKey) {
    // Same runtime and size on another base image: the image changed under the sandbox (a new snapshot, an agent moved).
    const [have, need] = [splitProfileKey(c.profileKey), splitProfileKey(want.profileKey)];
    if (have.prefix === need.prefix && have.base !== need.base)
      return skip('base-changed', `${label} was made on base-${have.base}; the sandbox now starts from base-${need.base}`);
    return skip(want.incompatible, `${label} was built for ${c.profileKey}; the sandbox runs ${want.profileKey}`);
  }
  const { fixed, preferred } = want.hosts;
  if (c.machineProfile) return machineVerdict(c, label, want.hosts, want.machines);
  // A host that already holds a copy needs no pull: the fixed host, else the sandbox's own, else any.
  const local = fixed
    ? c.cachedOn.includes(fixed)
      ? fixed
      : undefined
    : preferred && c.cachedOn.includes(preferred)
      ? preferred
      : c.cachedOn[0];
  const ref = c.storedRef ?? (local ? c.sourceImage : null);
  if (ref) return { ok: true, imageRef: ref, hostId: fixed ?? local ?? preferred ?? undefined };
  const where = fixed ? `host ${fixed}` : 'any online host';
  return skip('not-available', `${label} is neither in snapshot storage nor cached on ${where}`);
}

/**
 * A saved machine restores only on a host whose QEMU, machine type, accel, RAM, vCPUs and kernel are the ones it was
 * saved on: among those, a host holding a copy first (the fixed one, else the sandbox's own, else any).
 */
function machineVerdict(c: RestoreCandidate, label: string, hosts: HostChoice, machines: Record<string, string>): Verdict {
  const saved = c.machineProfile!;
  const { fixed, preferred } = hosts;
  const fits = Object.keys(machines)
    .filter((h) => machines[h] === saved && (!fixed || h === fixed))
    .sort();
  if (!fits.length) {
    const host = fixed ?? (preferred && machines[preferred] ? preferred : Object.keys(machines).sort()[0]);
    const where = host ? ` than host ${host}` : '';
    return skip(
      'machine-changed',
      `${label} is a saved machine of another machine profile${where}: ${machineDifference(saved, host ? machines[host] : undefined)}`,
    );
  }
  const local = [preferred, ...c.cachedOn].find((h): h is string => Boolean(h) && fits.includes(h!) && c.cachedOn.includes(h!));
  const ref = c.storedRef ?? (local ? c.sourceImage : null);
  if (!ref) return skip('not-available', `${label} is neither in snapshot storage nor cached on a host of its machine profile`);
  const hostId = local ?? (preferred && fits.includes(preferred) ? preferred : fits[0]);
  return { ok: true, imageRef: ref, hostId, machineProfile: saved };
}

type SnapshotStep = Exclude<RestoreStep, 'running'>;
const SNAPSHOT_STEPS: readonly SnapshotStep[] = ['session', 'golden-pin', 'golden-workspace', 'golden-system'];

/** What each snapshot step takes from the input and how it words its skips. */
function stepRules(
  input: RestoreInput,
  step: SnapshotStep,
): {
  candidate: RestoreCandidate | null;
  missing: SkipReason;
  missingDetail: string;
  kind: SnapshotKind;
  workspaces: string[];
  incompatible: SkipReason;
} {
  const box = input.sandbox;
  switch (step) {
    case 'session':
      return {
        candidate: input.session,
        missing: 'no-session-snapshot',
        missingDetail: `sandbox ${box.id} has no session snapshot yet`,
        kind: 'session',
        workspaces: [box.workspace],
        incompatible: 'incompatible-profile',
      };
    case 'golden-pin':
      return {
        candidate: input.pin,
        missing: 'no-pin',
        missingDetail: box.issueId ? `issue ${box.issueId} has no pinned snapshot` : `sandbox ${box.id} belongs to no issue`,
        kind: 'golden',
        workspaces: [box.workspace, SYSTEM_SCOPE],
        incompatible: 'pin-incompatible',
      };
    case 'golden-workspace':
      return {
        candidate: input.workspaceDefault,
        missing: 'no-workspace-default',
        missingDetail: `${box.workspace} has no default for ${box.size} ${box.profileKey}`,
        kind: 'golden',
        workspaces: [box.workspace],
        incompatible: 'incompatible-profile',
      };
    case 'golden-system':
      return {
        candidate: input.systemDefault,
        missing: 'no-system-default',
        missingDetail: `there is no system default for ${box.size} ${box.profileKey}`,
        kind: 'golden',
        workspaces: [SYSTEM_SCOPE],
        incompatible: 'incompatible-profile',
      };
  }
}

/** The restore order: running keep-alive sandbox → latest session → golden (pin → workspace → system) → base. */
export function chooseRestore(input: RestoreInput): RestoreDecision {
  const box = input.sandbox;
  const hosts: HostChoice = { fixed: input.hostId ?? null, preferred: box.hostId && box.hostStatus === 'online' ? box.hostId : null };
  const skipped: RestoreSkip[] = [];
  const imageBase = input.base ?? undefined;
  const about: DecisionBase = imageBase ? { profileKey: box.profileKey, base: imageBase } : {};
  const base = (): RestoreDecision => ({
    source: 'base',
    imageRef: imageBase?.storedRef ?? BASE_IMAGE_REF,
    ...(imageBase ? { snapshotId: imageBase.snapshotId, name: imageBase.name } : {}),
    hostId: hosts.fixed ?? hosts.preferred ?? undefined,
    skipped,
    ...about,
  });

  const running = runningVerdict(box);
  if (running.ok) return { source: 'running', hostId: running.hostId, containerId: running.containerId, skipped, ...about };
  skipped.push({ step: 'running', reason: running.reason, detail: running.detail });

  // Snapshot acceleration applies to full-VM sandboxes, not to container sandboxes; a container fork starts from the
  // files its source had when it was forked (its fork point) instead of the base, on every start.
  if (box.class !== 'vm') {
    const detail = `sandbox ${box.id} is a container sandbox; snapshots apply to full-VM sandboxes only`;
    const fork = input.fork;
    if (fork) {
      const verdict = candidateVerdict(fork, { ...stepRules(input, 'session'), profileKey: box.profileKey, hosts, machines: {} });
      if (verdict.ok)
        return {
          source: 'session',
          snapshotId: fork.id,
          name: fork.name,
          imageRef: verdict.imageRef,
          hostId: verdict.hostId,
          ...forkOrigin(fork, box.id),
          skipped,
          ...about,
        };
      skipped.push({ step: 'session', reason: verdict.reason, detail: `fork point: ${verdict.detail}` });
    }
    for (const step of SNAPSHOT_STEPS) if (!fork || step !== 'session') skipped.push({ step, reason: 'container-class', detail });
    return base();
  }

  for (const step of SNAPSHOT_STEPS) {
    const rules = stepRules(input, step);
    if (!rules.candidate) {
      skipped.push({ step, reason: rules.missing, detail: rules.missingDetail });
      continue;
    }
    const verdict = candidateVerdict(rules.candidate, { ...rules, profileKey: box.profileKey, hosts, machines: box.machines ?? {} });
    if (verdict.ok)
      return {
        source: step,
        snapshotId: rules.candidate.id,
        name: rules.candidate.name,
        imageRef: verdict.imageRef,
        hostId: verdict.hostId,
        ...(verdict.machineProfile ? { machineProfile: verdict.machineProfile } : {}),
        ...(step === 'session' ? forkOrigin(rules.candidate, box.id) : {}),
        skipped,
        ...about,
      };
    skipped.push({ step, reason: verdict.reason, detail: verdict.detail });
  }
  return base();
}
