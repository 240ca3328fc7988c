import { sandboxCatalog } from './activities';
import { authorize } from './authorize';
import type { IssuePinRequest, IssuePinResult } from './contracts/issuePins';

/**
 * Pin a golden snapshot on an issue (its sandboxes then start from it first), or unpin it: `issue.pin` decided and
 * audited with this run, then the one catalog write (refused for anything restore would skip anyway).
 */
export async function pinIssue(req: IssuePinRequest): Promise<IssuePinResult> {
  const { workspace, issue, snapshot } = req;
  const target = snapshot ? `${issue} → ${snapshot}` : `${issue} unpinned`;
  await authorize({ claim: req.claim, actor: req.actor, workspace, action: 'issue.pin', target });
  if (snapshot) return sandboxCatalog.pinIssueSnapshot({ workspace, issue, snapshotName: snapshot });
  await sandboxCatalog.unpinIssueSnapshot({ workspace, issue });
  return {};
}
