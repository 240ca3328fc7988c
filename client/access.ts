// The client's side of authorization: the same table (lib/authz.ts) the workflows apply, checked before a
// request is sent so a refusal is immediate. Catalog-only changes are decided by the catalog functions themselves.
import type { Client } from '@temporalio/client';
import { requireAccess } from '../catalog/access';
import type { Db } from '../db/client';
import type { Config } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { searchAttributes } from './searchAttributes';

export { requireAccess } from '../catalog/access';

/**
 * Reading a run (its result, its progress) is reading its workspace: the run's WorkspaceId search attribute says
 * which. A run without one, or none at all, is NOT_FOUND, so nothing about other workspaces' runs leaks.
 */
export async function requireRunAccess(temporal: Client, db: Db, config: Config, workflowId: string): Promise<void> {
  const workspace = await temporal.workflow
    .getHandle(workflowId)
    .describe()
    .then(
      (d) => d.typedSearchAttributes.get(searchAttributes.WorkspaceId),
      () => undefined,
    );
  if (!workspace)
    throw new SnapflowError({
      code: 'NOT_FOUND',
      field: 'workflowId',
      message: `no run ${workflowId.slice(0, 200)}`,
      hint: 'use the workflow id the create or build returned',
    });
  await requireAccess(db, config, workspace, 'snapshot.read');
}
