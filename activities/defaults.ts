// The one default per (workspace, size, profile): changed only by compare-and-set, every change appended to history.
import { compareAndSetDefault, type DefaultState, type SetDefault } from '../catalog/defaults';
import type { Db } from '../db/client';
import { boundary } from './boundary';

export type { DefaultState, SetDefault } from '../catalog/defaults';

export function createDefaultActivities(deps: { db: Db }) {
  return {
    async setDefault(input: SetDefault): Promise<DefaultState> {
      return boundary(() => compareAndSetDefault(deps.db, input));
    },
  };
}

export type DefaultActivities = ReturnType<typeof createDefaultActivities>;
