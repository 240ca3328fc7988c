// What a vm sandbox can leave behind on its host: QEMU processes (daemonized, they outlive any worker), VM
// directories, and half-written saved states in the host cache. Counted by the chaos audit like leftover containers.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxStatusQuery } from '../../workflows/contracts/sandbox';
import { vmProcesses, type ChaosEnv } from './env';

/** Written while a save or a pull is under way; whole states are renamed into place. */
const HALF_WRITTEN = /^save-|\.partial-|\.tmp$/;

/** The workflow that owns VM `id` runs and its sandbox's current machine is that VM. */
async function vmNeeded(env: ChaosEnv, id: string): Promise<boolean> {
  let owner: string;
  try {
    owner = readFileSync(join(env.vm.runRoot, id, 'owner'), 'utf8');
  } catch {
    return false;
  }
  try {
    const status = await env.client.temporal.workflow.getHandle(owner).query(sandboxStatusQuery);
    return status.containerId === `vm:${id}`;
  } catch {
    return false; // ended, or not a sandbox
  }
}

export async function vmLeftovers(env: ChaosEnv): Promise<string[]> {
  const orphans: string[] = [];
  const running = vmProcesses(env.vm.runRoot);
  for (const { pid, id } of running) {
    if (!(await vmNeeded(env, id))) orphans.push(`QEMU ${pid} (vm ${id}) without a live sandbox needing it`);
  }
  for (const id of existsSync(env.vm.runRoot) ? readdirSync(env.vm.runRoot) : []) {
    if (!running.some((p) => p.id === id)) orphans.push(`vm directory ${id} without its QEMU`);
  }
  const states = join(env.vm.cacheDir, 'vm-states');
  for (const name of existsSync(states) ? readdirSync(states) : []) {
    if (HALF_WRITTEN.test(name)) orphans.push(`half-written vm state ${name}`);
  }
  return orphans;
}
