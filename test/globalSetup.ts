// Starts the real stack once for the whole run: Temporal dev server, dockerd, an htpasswd registry,
// the offline base image, and the workflow bundle. Pids go into a state file so teardown (and CI's
// trap, if jest itself dies) can stop them by pid.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Docker from 'dockerode';
import { bundleWorkflows } from '../scripts/bundle-workflows';
import { ensureBaseImage, freePort, startDockerd, startRegistry, startTemporal, type ManagedProcess } from '../scripts/stack';
import { stopTestStack, stateFilePointer, type TestStackState } from './support/stackState';

export default async function globalSetup(): Promise<void> {
  // Short root: dockerd's containerd socket lives under it and unix socket paths max out at 108 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'sf-'));
  const state: Partial<TestStackState> & Pick<TestStackState, 'dir' | 'processes'> = { dir, processes: [] };
  const track = <T extends ManagedProcess>(p: T): T => (state.processes.push({ name: p.name, pid: p.pid }), save(), p);
  const save = (): void => {
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    mkdirSync(dirname(stateFilePointer), { recursive: true });
    writeFileSync(stateFilePointer, join(dir, 'state.json'));
  };
  try {
    const [temporalPort, registryPort] = [await freePort(), await freePort()];
    const storage = { username: 'snapflow', password: randomBytes(18).toString('base64url') };
    const [temporal, dockerd, registry, bundlePath] = await Promise.all([
      startTemporal({ dataDir: join(dir, 'temporal'), port: temporalPort }).then(track),
      startDockerd({ root: join(dir, 'docker') }).then(track),
      startRegistry({ dir: join(dir, 'registry'), port: registryPort, ...storage }).then(track),
      bundleWorkflows(join(dir, 'workflow-bundle.js')),
    ]);
    await ensureBaseImage(new Docker({ socketPath: dockerd.dockerHost.replace('unix://', '') }));
    Object.assign(state, {
      temporalAddress: temporal.address,
      dockerHost: dockerd.dockerHost,
      storage: { url: registry.url, registryHost: new URL(registry.url).host, ...storage },
      bundlePath,
    });
    save();
    process.env.SNAPFLOW_TEST_STATE = join(dir, 'state.json');
  } catch (err) {
    await stopTestStack(state);
    throw err;
  }
}
