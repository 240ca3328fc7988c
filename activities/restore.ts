// Restore resolution for workflows: the catalog's answer (catalog/restore.ts) and the order lib/restoreOrder.ts applies.
import { readRestoreInput, type LoadRestoreInput } from '../catalog/restore';
import type { Db } from '../db/client';
import { chooseRestore, type RestoreDecision, type RestoreInput } from '../lib/restoreOrder';
import { boundary } from './boundary';

export type { LoadRestoreInput } from '../catalog/restore';

export function createRestoreActivities(deps: { db: Db }) {
  return {
    /** The plain-data input of chooseRestore, for workflows that decide themselves. */
    async loadRestoreInput(input: LoadRestoreInput): Promise<RestoreInput> {
      return boundary(() => readRestoreInput(deps.db, input));
    },

    /** Where the sandbox's next run starts, with every earlier step of the order and why it was passed over. */
    async explainRestore(input: LoadRestoreInput): Promise<RestoreDecision> {
      return boundary(async () => chooseRestore(await readRestoreInput(deps.db, input)));
    },
  };
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;
