import { SYSTEM_SCOPE } from '../lib/ids';
import { storageGc } from './activities';
import { authorizeRun } from './authorize';
import type { StorageGcRequest, StorageGcResult } from './contracts/storageGc';

/**
 * Blobs no manifest references any more, counted (dry run) or removed by the registry's own garbage collection.
 * Snapshot storage serves every workspace, so it is asked of the system workspace: operators only.
 */
export async function storageGarbageCollection(req: StorageGcRequest): Promise<StorageGcResult> {
  await authorizeRun({ claim: req.claim, actor: req.actor, action: 'storage.gc', workspace: SYSTEM_SCOPE, target: 'snapshot storage' });
  const collected = await storageGc.collectStorageGarbage({ dryRun: req.dryRun });
  if (req.dryRun) return collected;
  // A sweep races uploads: a manifest that landed after the mark names blobs the sweep then removed. Say so.
  return { ...collected, check: await storageGc.checkStoredSnapshots() };
}
