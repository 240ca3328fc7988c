import { SYSTEM_SCOPE } from '../lib/ids';
import { storageGc } from './activities';
import { authorizeRun } from './authorize';
import type { StorageGcRequest, StorageGcResult } from './contracts/storageGc';

/**
 * Blobs no manifest references any more, counted (dry run) or removed by the registry's own garbage collection.
 * Snapshot storage serves every workspace, so it is asked of the system workspace: operators only.
 */
export async function collectStorageGarbage(req: StorageGcRequest): Promise<StorageGcResult> {
  await authorizeRun({ claim: req.claim, actor: req.actor, action: 'storage.gc', workspace: SYSTEM_SCOPE, target: 'snapshot storage' });
  return storageGc.collectStorageGarbage({ dryRun: req.dryRun });
}
