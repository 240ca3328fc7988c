import { taskQueues } from '../lib/ids';
import { catalog, hostProbe } from './activities';
import type { HostFacts, RefreshHostRequest } from './contracts/hosts';

/** Asks a host worker to describe its Docker engine and records the answer in the catalog. */
export async function refreshHost(req: RefreshHostRequest): Promise<HostFacts> {
  const facts = await hostProbe(req.hostId).describeHost();
  await catalog.upsertHost({ ...facts, taskQueue: taskQueues.host(req.hostId) });
  return facts;
}
