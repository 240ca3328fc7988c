// The one default per (workspace, size, profile): changed only by compare-and-set, every change appended to history.
import { compareAndSetDefault, type DefaultState, type SetDefault } from '../catalog/defaults';
import type { Db } from '../db/client';
import { writeOnce } from './boundary';

export type { DefaultState, SetDefault } from '../catalog/defaults';

export function createDefaultActivities(deps: { db: Db }) {
  return {
    async setDefault(input: SetDefault): Promise<DefaultState> {
      // A retry whose first attempt committed gets that attempt's state back, not CONFLICT against its own version.
      return writeOnce(deps.db, (tx) => compareAndSetDefault(tx, input));
    },
  };
}

export type DefaultActivities = ReturnType<typeof createDefaultActivities>;
