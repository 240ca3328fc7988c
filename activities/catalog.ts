// Catalog writes for workflows. Runs on the control worker, the only worker with database access.
// Every status change is a guarded UPDATE (from the expected status) plus an event in the same transaction.
import { changeHostStatus, chooseHost, saveHost } from '../catalog/hosts';
import {
  activateSnapshot,
  addSnapshotStep,
  assertReplaceable,
  failSnapshot,
  insertPendingSnapshot,
  moveReferences,
  interruptedDeletes,
  unsettledSnapshots,
  type PendingSnapshot,
  type RunRef,
} from '../catalog/snapshots';
import type { Db } from '../db/client';
import { appendLog, closeLog, openLog, snapshotLogRef, SNAPSHOT_LOG_SEGMENTS } from '../catalog/logs';
import type { ErrorCode } from '../lib/errors';
import type { HostFacts } from '../lib/hosts';
import { boundary, writeOnce } from './boundary';

export type { PendingSnapshot, RunRef } from '../catalog/snapshots';

export interface CatalogDeps {
  db: Db;
}

export function createCatalogActivities(deps: CatalogDeps) {
  const { db } = deps;
  return {
    /** Records a host as online with what its engine reported; the host id is the key. */
    async upsertHost(input: HostFacts & { taskQueue: string }): Promise<void> {
      return writeOnce(db, (tx) => saveHost(tx, input));
    },

    /**
     * Where a new sandbox or image pull goes: the online host with the most memory left after the sandboxes
     * already running there (catalog estimate, no Docker round trip), ties spread at random. Typed when none fits.
     */
    async pickHost(input: { size: string }): Promise<{ hostId: string }> {
      return boundary(() => chooseHost(db, input));
    },

    /** Drain: no new work is placed on the host; its sandboxes restore elsewhere from storage on their next start. */
    async setHostStatus(input: { hostId: string; status: 'online' | 'draining' }): Promise<{ found: boolean }> {
      return writeOnce(db, (tx) => changeHostStatus(tx, input));
    },

    /**
     * The workflow's first write. Idempotent by id (a retried activity finds its own row). A live row with the
     * same name and the same spec is reused; one with another spec is a CONFLICT.
     */
    async createPendingSnapshot(input: PendingSnapshot): Promise<{ snapshotId: string; reused: boolean }> {
      return writeOnce(db, (tx) => insertPendingSnapshot(tx, input));
    },

    async markSnapshotActive(input: { id: string; resolvedDigest: string; storedRef: string; run: RunRef }): Promise<void> {
      await writeOnce(db, (tx) => activateSnapshot(tx, input));
      await endSnapshotLog(db, input.id, 'active', `active: stored as ${input.storedRef}`);
    },

    async markSnapshotFailed(input: { id: string; code: ErrorCode; message: string; run?: RunRef }): Promise<void> {
      await writeOnce(db, (tx) => failSnapshot(tx, input));
      await endSnapshotLog(db, input.id, 'failed', `failed: ${input.code}: ${input.message}`);
    },

    /** `--replace` takes over defaults, pins and agents: only from a live image snapshot of the same workspace. */
    async checkReplaceable(input: { id: string; workspace: string }): Promise<void> {
      return boundary(() => assertReplaceable(db, input));
    },

    /** Progress that operators see in `snapshot get`; not a status change. */
    async recordSnapshotStep(input: { id: string; step: string; message: string; run: RunRef }): Promise<void> {
      await writeOnce(db, (tx) => addSnapshotStep(tx, input));
      if (!(input.step in SNAPSHOT_LOG_SEGMENTS)) return;
      const ref = snapshotLogRef(input.id, input.step as keyof typeof SNAPSHOT_LOG_SEGMENTS);
      await openLog(db, ref);
      await appendLog(db, ref.id, [{ seq: ref.seqBase!, stream: 'note', data: Buffer.from(`== ${input.step}: ${input.message}\n`) }]);
    },

    /**
     * `--replace`: move what pointed at the old snapshot (defaults, pins, and agents unless a rollout takes them)
     * to the new one, atomically, with a default-history entry per moved default. The old snapshot stays active for
     * rollback, and each moved agent remembers it as its previous snapshot.
     */
    async transferReferences(input: {
      fromId: string;
      toId: string;
      actor: string;
      run: RunRef;
      agents?: 'move' | 'keep';
    }): Promise<{ defaults: number; pins: number; agents: number }> {
      return writeOnce(db, (tx) => moveReferences(tx, input));
    },

    /** Pending rows whose run may be gone; the reconciler checks each against Temporal. */
    async listPendingSnapshots(input: {
      olderThanSeconds: number;
    }): Promise<Array<{ id: string; workflowId: string | null; runId: string | null }>> {
      return boundary(() => unsettledSnapshots(db, input));
    },

    /** `deleting` rows the reconciler may have to finish, with who asked for each delete. */
    async listInterruptedDeletes(input: { olderThanSeconds: number }): Promise<Array<{ id: string; actor: string }>> {
      return boundary(() => interruptedDeletes(db, input));
    },
  };
}

export type CatalogActivities = ReturnType<typeof createCatalogActivities>;

/** The last line of a snapshot's build log (its outcome), and the log closed. Idempotent like every append. */
async function endSnapshotLog(db: Db, snapshotId: string, outcome: string, line: string): Promise<void> {
  const ref = snapshotLogRef(snapshotId, 'end');
  await openLog(db, ref);
  await appendLog(db, ref.id, [{ seq: ref.seqBase!, stream: 'note', data: Buffer.from(`${line}\n`) }]);
  await closeLog(db, ref.id, { outcome, bytes: 0, dropped: 0 });
}
