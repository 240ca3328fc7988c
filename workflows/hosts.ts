import { SYSTEM_SCOPE, taskQueues } from '../lib/ids';
import { catalog, hostProbe } from './activities';
import type { HostFacts, HostPlacementRequest, HostPlacementResult, RefreshHostRequest } from './contracts/hosts';
import { reject } from './failures';
import { authorize } from './authorize';
import { since } from './legacy';

/** Asks a host worker to describe its Docker engine and records the answer in the catalog (operators, host workers). */
export async function refreshHost(req: RefreshHostRequest): Promise<HostFacts> {
  if (since.hostAuthorization()) {
    if (!req.actor) reject('PERMISSION_DENIED', 'this host refresh names no actor', { field: 'actor', hint: 'pass the actor' });
    await authorize({ claim: req.claim, actor: req.actor, hostId: req.hostId, action: 'host.refresh' });
  }
  const facts = await hostProbe(req.hostId).describeHost();
  await catalog.upsertHost({ ...facts, taskQueue: taskQueues.host(req.hostId) });
  return facts;
}

/**
 * Drain or undrain a host: operators only (managing the system workspace), decided and audited with this run. A
 * drained host takes no new sandbox, build or pull; its sandboxes restart elsewhere from storage.
 */
export async function changeHostPlacement(req: HostPlacementRequest): Promise<HostPlacementResult> {
  if (!req.actor) reject('PERMISSION_DENIED', 'this host placement change names no actor', { field: 'actor', hint: 'pass the actor' });
  const target = `host ${req.hostId} ${req.status}`;
  await authorize({ claim: req.claim, actor: req.actor, workspace: SYSTEM_SCOPE, action: 'workspace.manage', target });
  const { found } = await catalog.setHostStatus({ hostId: req.hostId, status: req.status });
  if (!found)
    reject('NOT_FOUND', `no host ${req.hostId} in the catalog`, {
      field: 'hostId',
      hint: 'hosts appear once their worker has started; `snapflow doctor` lists them',
    });
  return { hostId: req.hostId, status: req.status };
}
