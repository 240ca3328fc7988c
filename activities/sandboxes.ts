// Catalog side of sandboxes for the entity workflow: the row it keeps in step with its state, and session snapshots
// saved after successful jobs, and issue pins. Every write is idempotent, so a retried activity changes nothing twice.
import {
  insertSandbox,
  insertSessionSnapshot,
  pinOnIssue,
  readSessionSnapshot,
  saveIssue,
  setSandboxState,
  unpinOnIssue,
  type SandboxRow,
  type SandboxStateUpdate,
  type SessionSnapshot,
  type StoredSession,
} from '../catalog/sandboxes';
import type { Db } from '../db/client';
import { checkIssueKey } from '../lib/validation';
import { boundary, writeOnce } from './boundary';

export type { SandboxRow, SessionSnapshot, StoredSession } from '../catalog/sandboxes';

export function createSandboxActivities(deps: { db: Db }) {
  const { db } = deps;
  return {
    async registerSandbox(input: SandboxRow): Promise<void> {
      return writeOnce(db, (tx) => insertSandbox(tx, input));
    },

    /**
     * The issue a new sandbox is for, its row created on first use (an upsert on the workspace and key: a retry gets
     * the same row). The key is checked here too, for a workflow started without the client.
     */
    async saveSandboxIssue(input: { workspace: string; issue: string }): Promise<{ issueId: string }> {
      return writeOnce(db, async (tx) => {
        const issue = checkIssueKey(input.issue);
        return { issueId: (await saveIssue(tx, { workspace: input.workspace, issue })).id };
      });
    },

    /** Mirrors the workflow's state into the catalog (restore resolution and `sandbox list` read it). */
    async updateSandbox(input: SandboxStateUpdate): Promise<void> {
      return writeOnce(db, (tx) => setSandboxState(tx, input));
    },

    /**
     * The session snapshot of a successful job: registered active, cached on its host, and made the sandbox's
     * latest; the previous latest is marked superseded (its image is evicted with the host cache).
     */
    async saveSessionSnapshot(input: SessionSnapshot): Promise<{ snapshotId: string; superseded: string | null }> {
      return writeOnce(db, (tx) => insertSessionSnapshot(tx, input));
    },

    /** A session snapshot of the workspace, for promotion of a stopped sandbox (a read: nothing is booted). */
    async loadSessionSnapshot(input: { snapshotId: string; workspace: string }): Promise<StoredSession> {
      return boundary(() => readSessionSnapshot(db, input));
    },

    /** An issue's pinned golden (the issue row made on first pin), once the workflow has authorized the pin. */
    async pinIssueSnapshot(input: {
      workspace: string;
      issue: string;
      snapshotName: string;
    }): Promise<{ issueId: string; snapshotId: string }> {
      return writeOnce(db, (tx) => pinOnIssue(tx, input));
    },

    async unpinIssueSnapshot(input: { workspace: string; issue: string }): Promise<void> {
      return writeOnce(db, (tx) => unpinOnIssue(tx, input));
    },
  };
}

export type SandboxActivities = ReturnType<typeof createSandboxActivities>;
