// Catalog writes for workflows. Runs on the control worker, the only worker with database access.
import type { Db } from '../db/client';
import { hosts } from '../db/schema';
import type { HostFacts } from './docker';

export interface CatalogDeps {
  db: Db;
}

export function createCatalogActivities(deps: CatalogDeps) {
  const { db } = deps;
  return {
    /** Records a host as online with what its engine reported; the host id is the key. */
    async upsertHost(input: HostFacts & { taskQueue: string }): Promise<void> {
      const row = {
        id: input.hostId,
        taskQueue: input.taskQueue,
        dockerEndpoint: input.dockerHost,
        memoryTotalMib: input.memoryTotalMiB,
        status: 'online' as const,
        lastSeenAt: new Date(),
      };
      await db.insert(hosts).values(row).onConflictDoUpdate({ target: hosts.id, set: row });
    },
  };
}

export type CatalogActivities = ReturnType<typeof createCatalogActivities>;
