// The scale-out figure: golden builds per minute with 1, 2 and 4 simulated hosts (one dockerd each),
// printed as a ratio to one host. Every host is a real dockerd with its own host worker and task queue; all
// of them share this machine's cores and disk, so the ratio shows orchestration overhead, not new hardware.
import { join } from 'node:path';
import Docker from 'dockerode';
import { ensureBaseImage } from '../activities/baseImage';
import { startDockerd, stopProcess, type ManagedProcess } from '../scripts/stack';
import { uniqueHostId, type RunningWorker, type TestEnv } from '../test/support/stack';
import { time } from './measure';

const BUILDS = 8;

export async function benchMultiHost(t: TestEnv, counts: number[]): Promise<void> {
  const daemons: Array<ManagedProcess & { dockerHost: string }> = [];
  const workers: RunningWorker[] = [];
  const hostIds: string[] = [];
  try {
    const max = Math.max(...counts);
    for (let i = 0; i < max; i++) {
      const dockerd = i === 0 ? undefined : await startDockerd({ root: join(t.stack.dir, `bench-dockerd-${i}`) });
      if (dockerd) {
        daemons.push(dockerd);
        await ensureBaseImage(new Docker({ socketPath: dockerd.dockerHost.replace('unix://', '') }));
      }
      const hostId = uniqueHostId(`bench-h${i}`);
      workers.push(
        await t.startHostWorker({ hostId, dockerHost: dockerd?.dockerHost ?? t.stack.dockerHost, memoryLimitMiB: 2048 * BUILDS }),
      );
      await t.client.refreshHost(hostId);
      hostIds.push(hostId);
    }
    const workspaces = Array.from({ length: BUILDS }, (_, i) => `bench-multi-${i}`);
    for (const workspace of workspaces) {
      await t.client.golden.setConfig({ workspace, prebuildDeps: false, targets: ['small:codex'] });
    }
    const perMinute = new Map<number, number>();
    for (const k of counts) {
      for (const [i, hostId] of hostIds.entries()) await (i < k ? t.client.undrainHost(hostId) : t.client.drainHost(hostId));
      const placed = new Set<string>();
      const ms = await time(async () => {
        const started = await Promise.all(workspaces.map((workspace) => t.client.golden.buildNow({ workspace })));
        for (const r of await Promise.all(started.map((s) => t.client.golden.waitForBuild(s.workflowId)))) placed.add(r.hostId ?? '?');
      });
      perMinute.set(k, (BUILDS / ms) * 60_000);
      console.log(
        `  ${k} host(s): ${BUILDS} builds in ${(ms / 1000).toFixed(1)} s = ${perMinute.get(k)!.toFixed(1)} builds/min, placed on ${placed.size} host(s)`,
      );
    }
    const one = perMinute.get(counts[0]!)!;
    console.log(
      `multi-host golden builds per minute, ratio to ${counts[0]} host: ${counts.map((k) => `${k} → ${(perMinute.get(k)! / one).toFixed(2)}`).join(', ')}`,
    );
  } finally {
    for (const w of workers) await w.stop();
    for (const d of daemons) await stopProcess(d);
  }
}
