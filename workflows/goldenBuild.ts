import { CancellationScope, setCurrentDetails, uuid4, workflowInfo } from '@temporalio/workflow';
import type { BuildConfig } from '../activities/goldenCatalog';
import { BASE_IMAGE_REF, findPreset, profileKey } from '../lib/presets';
import { defaults, golden, hostActivities, hostGoldenActivities, hostProbe } from './activities';
import { saveMachine, type StepNote } from './goldenMachine';
import type { GoldenBuildRequest, GoldenBuildResult, GoldenSnapshotRef } from './contracts/goldenBuild';
import { failureOf, reject } from './failures';
import { warmHostCaches } from './hostCache';
import { publishGolden } from './publishGolden';
import { startOn } from './placement';
import { withWorkspace } from './compat';
import { authorize } from './authorize';
import { since } from './legacy';

/**
 * The host with the most free memory, if it has enough; otherwise the figures that say why not. Hosts are asked
 * in parallel; equal hosts are told apart by the build id, so builds starting together spread over them.
 */
async function pickBuildHost(needMiB: number, buildId: string): Promise<{ hostId?: string; figures: Record<string, number | string> }> {
  const figures: Record<string, number | string> = { neededMiB: needMiB };
  const online = await golden.listOnlineHosts();
  const free = await Promise.all(
    online.map(async ({ hostId }) => {
      try {
        const facts = await hostProbe(hostId).describeHost();
        return { hostId, freeMiB: facts.memoryTotalMiB - facts.memoryReservedMiB };
      } catch {
        figures[`${hostId}.freeMiB`] = 'unreachable';
        return undefined;
      }
    }),
  );
  const spread = (hostId: string): number => [...`${buildId}/${hostId}`].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  let best: { hostId: string; freeMiB: number } | undefined;
  for (const f of free) {
    if (!f) continue;
    figures[`${f.hostId}.freeMiB`] = f.freeMiB;
    if (!best || f.freeMiB > best.freeMiB || (f.freeMiB === best.freeMiB && spread(f.hostId) > spread(best.hostId))) best = f;
  }
  return best && best.freeMiB >= needMiB ? { hostId: best.hostId, figures } : { figures };
}

/** A golden built on an image snapshot base boots when that base's entrypoint is still running this long after start. */
const BASE_SETTLE_SECONDS = 5;

function goldenName(target: { runtime: string; size: string }, buildId: string): string {
  const stamp = new Date().toISOString().slice(0, 16).replace(/[-:]/g, '').replace('T', '-'); // workflow time: deterministic
  return `golden-${target.runtime}-${target.size}-${stamp}-${buildId.slice(0, 4)}`;
}

/**
 * Temporary sandbox → preload repos / skills / deps → commit → verify boot → push → register →
 * default for each target. Skipped (not failed) when no host has the memory. The temporary sandbox is
 * removed on every path, cancellation included.
 */
export async function buildGoldenSnapshot(req: GoldenBuildRequest): Promise<GoldenBuildResult> {
  req = withWorkspace(req);
  const buildId = req.buildId ?? uuid4();
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  // Scheduled runs act as whoever set the config (their access is checked at every run).
  if (since.authorization()) {
    if (!req.actor)
      reject('PERMISSION_DENIED', `this ${req.trigger} build names no actor`, {
        field: 'actor',
        hint: 'set the golden config again (`snapflow golden config set`): its schedule then carries who set it',
      });
    await authorize({ claim: req.claim, actor: req.actor, workspace: req.workspace, action: 'golden.build', target: buildId, run });
  }
  const config: BuildConfig = await golden.loadBuildConfig({ workspace: req.workspace });
  await golden.startBuild({ buildId, workspace: req.workspace, trigger: req.trigger, run });
  try {
    const needMiB = Math.max(...config.targets.map((t) => findPreset(t.size)?.memoryMiB ?? 0));
    const placement = await pickBuildHost(needMiB, buildId);
    if (!placement.hostId) {
      const message = `no online host has ${needMiB} MiB free for this build`;
      await golden.finishBuild({ buildId, status: 'skipped', reason: 'INSUFFICIENT_HOST_MEMORY', message, figures: placement.figures });
      setCurrentDetails(`**skipped**: ${message}`);
      return { buildId, status: 'skipped', reason: 'INSUFFICIENT_HOST_MEMORY', message, figures: placement.figures, snapshots: [] };
    }
    return await buildOn({ req, buildId, run, config, hostId: placement.hostId });
  } catch (err) {
    const failure = failureOf(err);
    await CancellationScope.nonCancellable(() =>
      golden.finishBuild({ buildId, status: 'failed', reason: failure.code, message: failure.message }),
    );
    setCurrentDetails(`**failed**: ${failure.code}: ${failure.message}`);
    return reject(failure.code, failure.message, failure);
  }
}

/** One build, once it has its host. */
interface Build {
  req: GoldenBuildRequest;
  buildId: string;
  run: { workflowId: string; runId: string };
  config: BuildConfig;
  hostId: string;
}

/** The build on its host: the temporary sandbox, preloaded, published as each target's golden, removed on every path. */
async function buildOn(b: Build): Promise<GoldenBuildResult> {
  const { req, buildId, config, hostId } = b;
  const docker = hostActivities(hostId);
  const biggest = config.targets.reduce((a, c) => ((findPreset(a.size)?.memoryMiB ?? 0) >= (findPreset(c.size)?.memoryMiB ?? 0) ? a : c));

  // The image the targets name as their base (pulled from snapshot storage like any snapshot), else the built-in one.
  const base = config.base;
  setCurrentDetails(`**sandbox** on ${hostId}${base ? ` from ${base.name}` : ''}`);
  // Runs recorded before bases were cached first created the sandbox straight away.
  const cached = { storedRef: base && since.goldenBase() ? base.storedRef : undefined, workspace: req.workspace };
  const temp = await startOn(hostId, cached, () =>
    docker.createTempSandbox({
      key: `golden-${buildId}`,
      image: base?.storedRef ?? BASE_IMAGE_REF,
      size: biggest.size,
      workflowId: b.run.workflowId,
    }),
  );
  let localRef: string | undefined;
  try {
    await preload(b, temp.containerId);
    setCurrentDetails('**commit** and **verify**');
    const { storedRef, registered } = await publishGolden({
      hostId,
      containerId: temp.containerId,
      workspace: req.workspace,
      size: biggest.size,
      tag: `build-${buildId.slice(0, 8)}`,
      committed: (ref) => (localRef = ref),
      boot: base ? { entrypoint: base.entrypoint, settleSeconds: BASE_SETTLE_SECONDS } : undefined,
      bootLog: goldenLog(buildId, 4),
      uploading: () => setCurrentDetails('**upload** to storage'),
      register: (stored) => registerTargets(b, stored, localRef!),
    });
    setCurrentDetails('**cache**: pre-warming hosts that serve these sizes');
    const cache = await warmHostCaches({ builtOn: hostId, workspace: req.workspace, storedRef, snapshots: registered });
    await golden.finishBuild({ buildId, status: 'succeeded', snapshotId: registered[0]?.snapshotId });
    setCurrentDetails(`**succeeded**: ${registered.map((r) => r.name).join(', ')}`);
    localRef = undefined; // the built image stays cached on the host
    return { buildId, status: 'succeeded', hostId, storedRef, snapshots: registered, cache };
  } finally {
    await CancellationScope.nonCancellable(async () => {
      await docker.removeSandbox({ containerId: temp.containerId });
      if (localRef) await docker.removeLocalImage({ ref: localRef });
    });
  }
}

/** Repos, skills and deps into the temporary sandbox, each step's output into its segment of the build's log. */
async function preload({ buildId, config, hostId }: Build, containerId: string): Promise<void> {
  const build = hostGoldenActivities(hostId);
  setCurrentDetails(
    `**preload** ${config.repos.length} repo(s)${config.embedSkills ? ', skills' : ''}${config.prebuildDeps ? ', deps' : ''}`,
  );
  const { loaded } = config.repos.length
    ? await build.preloadRepos({ containerId, repos: config.repos, log: goldenLog(buildId, 1) })
    : { loaded: [] as string[] };
  if (config.embedSkills && config.skillsPath)
    await build.embedSkills({ containerId, path: config.skillsPath, log: goldenLog(buildId, 2) });
  if (config.prebuildDeps)
    await build.buildDeps({
      containerId,
      repoDirs: loaded,
      fallbackCommand: config.depsFallbackCommand ?? undefined,
      log: goldenLog(buildId, 3),
    });
}

/** Each target gets its snapshot (a `vm` target: the built image saved as a machine) and becomes the default at once. */
async function registerTargets(b: Build, stored: { storedRef: string; digest: string }, localRef: string): Promise<GoldenSnapshotRef[]> {
  const { req, buildId, config, run } = b;
  const snapshots: GoldenSnapshotRef[] = [];
  let saves = 0;
  for (const target of config.targets) {
    const key = profileKey({ runtime: target.runtime, size: target.size, baseDigest: config.base?.storedRef });
    const name = goldenName(target, buildId);
    const machine =
      target.machine && since.goldenMachine()
        ? await withStepLog(vmStepLog(buildId, saves++), `== vm ${target.size}: boot the built image as a machine, save it`, (note) =>
            saveMachine(
              {
                hostId: b.hostId,
                workflowId: run.workflowId,
                workspace: req.workspace,
                buildId,
                size: target.size,
                image: localRef,
                entrypoint: config.base?.entrypoint,
                settleSeconds: BASE_SETTLE_SECONDS,
              },
              note,
            ),
          )
        : undefined;
    const { snapshotId } = await golden.registerGolden({
      id: uuid4(),
      workspace: req.workspace,
      name,
      ...(machine ?? stored),
      runtime: target.runtime,
      size: target.size,
      profileKey: key,
      origin: req.trigger,
      run,
    });
    await defaults.setDefault({
      workspace: req.workspace,
      size: target.size,
      profileKey: key,
      snapshotId,
      actor: req.actor ?? req.trigger,
      reason: `golden build ${buildId}`,
      workflowId: run.workflowId,
    });
    const machineProfile = machine?.machineProfile;
    snapshots.push({
      snapshotId,
      name,
      size: target.size,
      runtime: target.runtime,
      profileKey: key,
      ...(machine ? { machineProfile } : {}),
    });
  }
  return snapshots;
}

/** A segment of the build's log (catalog/logs.ts goldenLogRef: preload 1, skills 2, deps 3, boot 4; workflows cannot import it). */
function goldenLog(buildId: string, segment: number) {
  return { id: `golden:${buildId}`, kind: 'golden' as const, subject: buildId, seqBase: segment * 2 ** 24 };
}

/** The lines of the `save`-th vm target's step (segment vm, 4 places each); runs recorded before them write none. */
function vmStepLog(buildId: string, save: number): StepNote {
  return async (at, line) => {
    if (since.goldenStepLog()) await golden.noteGoldenLog({ buildId, segment: 'vm', at: save * 4 + at, line });
  };
}

/** A step the workflow drives: its first line, its own lines (places 1, 2), and on failure the failure (place 3). */
async function withStepLog<T>(note: StepNote, first: string, step: (note: StepNote) => Promise<T>): Promise<T> {
  await note(0, first);
  try {
    return await step(note);
  } catch (err) {
    const failure = failureOf(err);
    await CancellationScope.nonCancellable(() => note(3, `failed: ${failure.code}: ${failure.message}`));
    throw err;
  }
}
