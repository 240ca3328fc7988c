import { workflowInfo } from '@temporalio/workflow';
import { taskQueues } from '../lib/ids';
import { access, catalog, hostProbe } from './activities';
import type { HostFacts, RefreshHostRequest } from './contracts/hosts';
import { reject } from './failures';
import { vouch } from './authorize';
import { since } from './legacy';

/** Asks a host worker to describe its Docker engine and records the answer in the catalog (operators, host workers). */
export async function refreshHost(req: RefreshHostRequest): Promise<HostFacts> {
  if (since.hostAuthorization()) {
    if (!req.actor) reject('PERMISSION_DENIED', 'this host refresh names no actor', { field: 'actor', hint: 'pass the actor' });
    const { workflowId, runId } = workflowInfo();
    await access.authorizeHost({
      ...vouch(req.claim),
      actor: req.actor,
      hostId: req.hostId,
      action: 'host.refresh',
      run: { workflowId, runId },
    });
  }
  const facts = await hostProbe(req.hostId).describeHost();
  await catalog.upsertHost({ ...facts, taskQueue: taskQueues.host(req.hostId) });
  return facts;
}
