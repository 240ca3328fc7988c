// Retiring snapshots: the guarded move to `deleting`, the registry delete, the tombstone.
import { markDeleted, markDeleting } from '../catalog/retirement';
import type { RunRef } from '../catalog/snapshots';
import type { Db } from '../db/client';
import type { StorageConfig } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { boundary, writeOnce } from './boundary';
import { deleteManifest } from './registryClient';

export interface RetirementDeps {
  db: Db;
  storage?: StorageConfig;
}

export function createRetirementActivities(deps: RetirementDeps) {
  const { db } = deps;
  return {
    /** Refuses while a default, a pin or a sandbox uses the snapshot, naming them; else moves it to `deleting`. */
    async beginDelete(input: { id: string; actor: string; run: RunRef }): Promise<{ storedRef: string | null; alreadyDeleted: boolean }> {
      return writeOnce(db, (tx) => markDeleting(tx, input));
    },

    /** Removes the manifest from snapshot storage (idempotent); blobs go with the registry's garbage collection. */
    async deleteStoredImage(input: { storedRef: string }): Promise<void> {
      const at = input.storedRef.indexOf('@');
      const slash = input.storedRef.indexOf('/');
      const registry = input.storedRef.slice(0, slash);
      const storage = await boundary(async () => {
        if (!deps.storage || registry !== deps.storage.registryHost) {
          throw new SnapflowError({
            code: 'STORAGE_UNAVAILABLE',
            message: `cannot delete ${input.storedRef}: snapshot storage ${deps.storage?.url ?? '(not configured)'} does not hold it`,
          });
        }
        return deps.storage;
      });
      // Registry errors stay retryable: the activity policy tries again.
      await deleteManifest({
        registry,
        repository: input.storedRef.slice(slash + 1, at),
        digest: input.storedRef.slice(at + 1),
        credentials: { username: storage.username, password: storage.password },
      });
    },

    async finishDelete(input: { id: string; actor: string; run: RunRef }): Promise<void> {
      return writeOnce(db, (tx) => markDeleted(tx, input));
    },
  };
}

export type RetirementActivities = ReturnType<typeof createRetirementActivities>;
