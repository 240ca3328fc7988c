// The search attributes every run carries (registered on the dev server by scripts/stack.ts), so operators can
// find runs in the Temporal UI and the client can tell which workspace a run belongs to.
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';

export const searchAttributes = {
  SnapshotName: defineSearchAttributeKey('SnapshotName', SearchAttributeType.KEYWORD),
  SnapshotKind: defineSearchAttributeKey('SnapshotKind', SearchAttributeType.KEYWORD),
  WorkspaceId: defineSearchAttributeKey('WorkspaceId', SearchAttributeType.KEYWORD),
  SandboxSize: defineSearchAttributeKey('SandboxSize', SearchAttributeType.KEYWORD),
  Runtime: defineSearchAttributeKey('Runtime', SearchAttributeType.KEYWORD),
};
