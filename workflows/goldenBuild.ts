import { ApplicationFailure, CancellationScope, isCancellation, patched, setCurrentDetails, uuid4, workflowInfo } from '@temporalio/workflow';
import type { BuildConfig } from '../activities/goldenCatalog';
import { describeFailure } from '../lib/errors';
import { BASE_IMAGE_REF, findPreset, profileKey } from '../lib/presets';
import { access, defaults, golden, hostActivities, hostGoldenActivities, hostProbe } from './activities';
import { warmHostCaches, type HostCacheOutcome } from './hostCache';

export interface GoldenBuildRequest {
  scope: string;
  trigger: 'build-now' | 'schedule';
  actor?: string;
  /** Given by build-now callers; scheduled runs draw one (deterministically) in the workflow. */
  buildId?: string;
}

export interface GoldenSnapshotRef {
  snapshotId: string;
  name: string;
  size: string;
  runtime: string;
  profileKey: string;
}

export interface GoldenBuildResult {
  buildId: string;
  status: 'succeeded' | 'skipped';
  reason?: string;
  message?: string;
  figures?: Record<string, number | string>;
  hostId?: string;
  storedRef?: string;
  snapshots: GoldenSnapshotRef[];
  /** Where the new image is cached, where pre-warming failed, what was evicted. */
  cache?: HostCacheOutcome;
}

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
  const buildId = req.buildId ?? uuid4();
  const { workflowId, runId } = workflowInfo();
  const run = { workflowId, runId };
  // Scheduled runs act as whoever set the config (their access is checked at every run).
  if (patched('authz-v1')) {
    if (!req.actor) throw ApplicationFailure.create({ type: 'PERMISSION_DENIED', message: `this ${req.trigger} build names no actor`, nonRetryable: true, details: [{ field: 'actor', hint: 'set the golden config again (`snapflow golden config set`): its schedule then carries who set it' }] });
    await access.authorize({ actor: req.actor, scope: req.scope, action: 'golden.build', target: buildId, run });
  }
  const config: BuildConfig = await golden.loadBuildConfig({ scope: req.scope });
  await golden.startBuild({ buildId, scope: req.scope, trigger: req.trigger, run });
  try {
    const needMiB = Math.max(...config.targets.map((t) => findPreset(t.size)?.memoryMiB ?? 0));
    const placement = await pickBuildHost(needMiB, buildId);
    if (!placement.hostId) {
      const message = `no online host has ${needMiB} MiB free for this build`;
      await golden.finishBuild({ buildId, status: 'skipped', reason: 'INSUFFICIENT_HOST_MEMORY', message, figures: placement.figures });
      setCurrentDetails(`**skipped**: ${message}`);
      return { buildId, status: 'skipped', reason: 'INSUFFICIENT_HOST_MEMORY', message, figures: placement.figures, snapshots: [] };
    }
    const hostId = placement.hostId;
    const docker = hostActivities(hostId);
    const build = hostGoldenActivities(hostId);
    const biggest = config.targets.reduce((a, b) => ((findPreset(a.size)?.memoryMiB ?? 0) >= (findPreset(b.size)?.memoryMiB ?? 0) ? a : b));

    setCurrentDetails(`**sandbox** on ${hostId}`);
    const temp = await docker.createTempSandbox({ key: `golden-${buildId}`, image: BASE_IMAGE_REF, size: biggest.size, workflowId });
    let localRef: string | undefined;
    try {
      setCurrentDetails(`**preload** ${config.repos.length} repo(s)${config.embedSkills ? ', skills' : ''}${config.prebuildDeps ? ', deps' : ''}`);
      const { loaded } = config.repos.length ? await build.preloadRepos({ containerId: temp.containerId, repos: config.repos }) : { loaded: [] as string[] };
      if (config.embedSkills && config.skillsPath) await build.embedSkills({ containerId: temp.containerId, path: config.skillsPath });
      if (config.prebuildDeps) await build.buildDeps({ containerId: temp.containerId, repoDirs: loaded, fallbackCommand: config.depsFallbackCommand ?? undefined });

      setCurrentDetails('**commit** and **verify**');
      const image = await docker.commitSandbox({ containerId: temp.containerId, repository: `snapflow/golden/${req.scope}`, tag: `build-${buildId.slice(0, 8)}`, changes: ['CMD ["/app/start.sh"]'] });
      localRef = image.ref;
      await build.verifyBoot({ image: image.ref, entrypoint: '/app/start.sh' }); // a failed check leaves the old default alone

      setCurrentDetails('**upload** to storage');
      const stored = await docker.pushImage({ ref: image.ref });
      const storedRef = `${image.ref.slice(0, image.ref.lastIndexOf(':'))}@${stored.digest}`;

      const registered: GoldenSnapshotRef[] = [];
      for (const target of config.targets) {
        const key = profileKey({ runtime: target.runtime, size: target.size });
        const name = goldenName(target, buildId);
        const { snapshotId } = await golden.registerGolden({ id: uuid4(), scope: req.scope, name, storedRef, digest: stored.digest, runtime: target.runtime, size: target.size, profileKey: key, origin: req.trigger, run });
        await defaults.setDefault({ scope: req.scope, size: target.size, profileKey: key, snapshotId, actor: req.actor ?? req.trigger, reason: `golden build ${buildId}`, workflowId });
        registered.push({ snapshotId, name, size: target.size, runtime: target.runtime, profileKey: key });
      }
      setCurrentDetails('**cache**: pre-warming hosts that serve these sizes');
      const cache = await warmHostCaches({ builtOn: hostId, storedRef, snapshots: registered });
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
  } catch (err) {
    const failure = isCancellation(err) ? { code: 'CANCELLED' as const, message: 'cancelled by an operator', hint: undefined, field: undefined } : describeFailure(err);
    await CancellationScope.nonCancellable(() => golden.finishBuild({ buildId, status: 'failed', reason: failure.code, message: failure.message }));
    setCurrentDetails(`**failed**: ${failure.code}: ${failure.message}`);
    throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true, details: [{ field: failure.field, hint: failure.hint }] });
  }
}
