// What Ctrl-C of `npm start` does to the dev dockerd (scripts/stack.ts stopDockerd): a running sandbox container,
// its containerd-shim and its mounts do not outlive the stop, so the directory can be removed; the container
// itself stays (stopped) for the next start.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { BASE_IMAGE_REF } from '../lib/presets';
import { ensureBaseImage, mountsUnder, processesUnder, startDockerd, stopDockerd } from '../scripts/stack';

test('stopping the dev dockerd leaves no process and no mount of it behind, and keeps its containers', async () => {
  const root = mkdtempSync(join(tmpdir(), 'sfd-'));
  const dockerd = await startDockerd({ root });
  try {
    const docker = new Docker({ socketPath: join(root, 'docker.sock') });
    await ensureBaseImage(docker);
    const container = await docker.createContainer({
      Image: BASE_IMAGE_REF,
      Cmd: ['sleep', '600'],
      Labels: { 'snapflow.test': 'dockerd-stop' },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    // What live-restore would keep: the shim (and containerd) and the container's mounts, all under the root.
    expect(processesUnder(root).length).toBeGreaterThan(1);
    expect(mountsUnder(root).length).toBeGreaterThan(0);

    expect(await stopDockerd(dockerd, root)).toEqual({ containers: 1 });
    expect(processesUnder(root)).toEqual([]);
    expect(mountsUnder(root)).toEqual([]);

    // The next start of the same root still has the (stopped) container.
    const again = await startDockerd({ root });
    const listed = await docker.listContainers({ all: true, filters: { label: ['snapflow.test=dockerd-stop'] } });
    expect(listed.map((c) => c.State)).toEqual(['exited']);
    await stopDockerd(again, root);
    expect(processesUnder(root)).toEqual([]);
  } finally {
    await stopDockerd(dockerd, root).catch(() => undefined);
    rmSync(root, { recursive: true, force: true }); // throws EBUSY if a mount were left
  }
}, 180_000);
