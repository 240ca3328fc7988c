// Catalog writes for workflows. Runs on the control worker, the only worker with database access.
// Every status change is a guarded UPDATE (from the expected status) plus an event in the same transaction.
import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { agents } from '../db/access';
import { defaultHistory, defaultPointers, hosts, issues, snapshotEvents, snapshots, type NewSnapshot, type Snapshot, type SnapshotStatus } from '../db/schema';
import { SnapflowError, toNonRetryableFailure, type ErrorCode } from '../lib/errors';
import { findPreset } from '../lib/presets';
import type { HostFacts } from './docker';

export interface CatalogDeps {
  db: Db;
}

/** What a workflow knows about the run that writes a row; recorded on the row and its events. */
export interface RunRef {
  workflowId: string;
  runId: string;
}

export type PendingSnapshot = Pick<
  NewSnapshot,
  'id' | 'scope' | 'name' | 'kind' | 'sourceImage' | 'entrypoint' | 'runtime' | 'size' | 'profileKey' | 'origin' | 'parentSnapshotId' | 'sandboxId'
> & { id: string; run: RunRef; actor?: string };

/** The fields that decide replace-vs-reuse (see README, Image snapshots): image, runtime, entrypoint, capacity. */
export function sameSpec(a: Pick<Snapshot, 'sourceImage' | 'runtime' | 'entrypoint' | 'size'>, b: Pick<Snapshot, 'sourceImage' | 'runtime' | 'entrypoint' | 'size'>): boolean {
  return a.sourceImage === b.sourceImage && a.runtime === b.runtime && a.entrypoint === b.entrypoint && a.size === b.size;
}

const isUniqueViolation = (err: unknown): boolean => {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) if ((e as { code?: string }).code === '23505') return true;
  return false;
};

export function createCatalogActivities(deps: CatalogDeps) {
  const { db } = deps;

  async function transition(input: { id: string; from: SnapshotStatus[]; to: SnapshotStatus; set?: Partial<NewSnapshot>; type: string; message?: string; run?: RunRef; actor?: string }): Promise<Snapshot | undefined> {
    return db.transaction(async (tx) => {
      const [before] = await tx.select({ status: snapshots.status }).from(snapshots).where(eq(snapshots.id, input.id)).for('update');
      if (!before || !input.from.includes(before.status)) return undefined; // already moved on: idempotent retry
      const [row] = await tx.update(snapshots).set({ ...input.set, status: input.to }).where(eq(snapshots.id, input.id)).returning();
      await tx.insert(snapshotEvents).values({
        snapshotId: input.id,
        type: input.type,
        fromStatus: before.status,
        toStatus: input.to,
        message: input.message,
        actor: input.actor,
        workflowId: input.run?.workflowId,
        runId: input.run?.runId,
      });
      return row;
    });
  }

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
      // A host an operator drains stays draining when its worker announces itself again; only `undrain` ends it.
      await db
        .insert(hosts)
        .values(row)
        .onConflictDoUpdate({ target: hosts.id, set: { ...row, status: sql`case when ${hosts.status} = 'draining' then 'draining'::host_status else 'online'::host_status end` } });
    },

    /**
     * Where a new sandbox or image pull goes: the online host with the most memory left after the sandboxes
     * already running there (catalog estimate, no Docker round trip), ties spread at random. Typed when none fits.
     */

    async pickHost(input: { size: string }): Promise<{ hostId: string }> {
      const needMiB = findPreset(input.size)?.memoryMiB ?? 0;
      const rows = await db.execute<{ id: string; free: number }>(sql`
        select h.id, h.memory_total_mib - coalesce(sum(p.memory_mib) filter (where b.state in ('provisioning', 'idle', 'busy', 'snapshotting', 'promoting')), 0)::int as free
        from hosts h left join sandboxes b on b.host_id = h.id left join size_presets p on p.key = b.size
        where h.status = 'online' group by h.id order by free desc, random()`);
      const [best] = rows;
      if (!best) throw toNonRetryableFailure(new SnapflowError({ code: 'DOCKER_UNAVAILABLE', message: 'no Docker host is online', hint: 'start a host worker: `npm run worker:host` (or undrain one: `snapflow host undrain <id>`)' }));
      if (best.free < needMiB) {
        throw toNonRetryableFailure(new SnapflowError({ code: 'INSUFFICIENT_HOST_MEMORY', message: `no online host has ${needMiB} MiB free for size ${input.size} (most free: ${best.id} with ${best.free} MiB)`, hint: 'add a host, stop idle sandboxes, or use a smaller size' }));
      }
      return { hostId: best.id };
    },

    /** Drain: no new work is placed on the host; its sandboxes restore elsewhere from storage on their next start. */
    async setHostStatus(input: { hostId: string; status: 'online' | 'draining' }): Promise<{ found: boolean }> {
      const updated = await db.update(hosts).set({ status: input.status }).where(eq(hosts.id, input.hostId)).returning({ id: hosts.id });
      return { found: updated.length > 0 };
    },

    /**
     * The workflow's first write. Idempotent by id (a retried activity finds its own row). A live row with the
     * same name and the same spec is reused; one with another spec is a CONFLICT.
     */
    async createPendingSnapshot(input: PendingSnapshot): Promise<{ snapshotId: string; reused: boolean }> {
      const { run, actor, ...row } = input;
      try {
        await db.transaction(async (tx) => {
          // A failed attempt under this name is superseded by the new one (its events stay).
          const superseded = await tx
            .update(snapshots)
            .set({ status: 'deleted', deletedAt: new Date() })
            .where(and(eq(snapshots.scope, row.scope), eq(snapshots.name, row.name), eq(snapshots.status, 'failed'), ne(snapshots.id, row.id)))
            .returning({ id: snapshots.id });
          for (const s of superseded) {
            await tx.insert(snapshotEvents).values({ snapshotId: s.id, type: 'superseded', fromStatus: 'failed', toStatus: 'deleted', message: `retried as ${row.id}`, actor, workflowId: run.workflowId, runId: run.runId });
          }
          const inserted = await tx.insert(snapshots).values({ ...row, status: 'pending', workflowId: run.workflowId, runId: run.runId }).onConflictDoNothing({ target: snapshots.id }).returning({ id: snapshots.id });
          if (inserted.length) {
            await tx.insert(snapshotEvents).values({ snapshotId: row.id, type: 'created', toStatus: 'pending', message: `${row.kind} snapshot requested (${row.origin})`, actor, workflowId: run.workflowId, runId: run.runId });
          }
        });
        return { snapshotId: row.id, reused: false };
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const [live] = await db.select().from(snapshots).where(and(eq(snapshots.scope, row.scope), eq(snapshots.name, row.name), ne(snapshots.status, 'deleted')));
        if (live && sameSpec(live, { sourceImage: row.sourceImage ?? null, runtime: row.runtime, entrypoint: row.entrypoint ?? '/app/start.sh', size: row.size })) {
          return { snapshotId: live.id, reused: true };
        }
        throw toNonRetryableFailure(new SnapflowError({ code: 'CONFLICT', field: 'name', message: `snapshot "${row.name}" already exists in ${row.scope} with a different image, runtime, entrypoint or size`, hint: 'choose a new versioned name, or pass --replace' }));
      }
    },

    async markSnapshotActive(input: { id: string; resolvedDigest: string; storedRef: string; run: RunRef }): Promise<void> {
      await transition({ id: input.id, from: ['pending'], to: 'active', set: { resolvedDigest: input.resolvedDigest, storedRef: input.storedRef, errorCode: null, errorMessage: null }, type: 'activated', message: `stored as ${input.storedRef}`, run: input.run });
    },

    async markSnapshotFailed(input: { id: string; code: ErrorCode; message: string; run?: RunRef }): Promise<void> {
      await transition({ id: input.id, from: ['pending'], to: 'failed', set: { errorCode: input.code, errorMessage: input.message.slice(0, 2000) }, type: 'failed', message: `${input.code}: ${input.message}`.slice(0, 2000), run: input.run });
    },

    /** `--replace` takes over defaults, pins and agents: only from a live image snapshot of the same workspace. */
    async checkReplaceable(input: { id: string; scope: string }): Promise<void> {
      const [old] = await db.select({ scope: snapshots.scope, name: snapshots.name, kind: snapshots.kind, status: snapshots.status }).from(snapshots).where(eq(snapshots.id, input.id));
      const refuse = (code: ErrorCode, message: string, hint: string): never => {
        throw toNonRetryableFailure(new SnapflowError({ code, field: 'replaces', message, hint }));
      };
      if (!old || old.status === 'deleted' || old.status === 'deleting') refuse('NOT_FOUND', `snapshot ${input.id} to replace does not exist (any more)`, 'create without --replace');
      if (old!.scope !== input.scope) refuse('PERMISSION_DENIED', `snapshot ${old!.name} belongs to ${old!.scope}, not ${input.scope}`, 'replace a snapshot of your own workspace');
      if (old!.kind !== 'image') refuse('CONFLICT', `${old!.name} is a ${old!.kind} snapshot; an image snapshot does not replace it`, 'choose another name; golden defaults change with `snapflow golden set-default`');
    },

    /** Progress that operators see in `snapshot get`; not a status change. */
    async recordSnapshotStep(input: { id: string; step: string; message: string; run: RunRef }): Promise<void> {
      await db.insert(snapshotEvents).values({ snapshotId: input.id, type: `step:${input.step}`, message: input.message, workflowId: input.run.workflowId, runId: input.run.runId });
    },

    /**
     * `--replace`: move what pointed at the old snapshot (defaults, pins, and agents unless a rollout takes them)
     * to the new one, atomically, with a default-history entry per moved default. The old snapshot stays active for
     * rollback, and each moved agent remembers it as its previous snapshot.
     */
    async transferReferences(input: { fromId: string; toId: string; actor: string; run: RunRef; agents?: 'move' | 'keep' }): Promise<{ defaults: number; pins: number; agents: number }> {
      return db.transaction(async (tx) => {
        const moved = await tx
          .update(defaultPointers)
          .set({ snapshotId: input.toId, version: sql`${defaultPointers.version} + 1` })
          .where(eq(defaultPointers.snapshotId, input.fromId))
          .returning();
        for (const p of moved) {
          await tx.insert(defaultHistory).values({ scope: p.scope, size: p.size, profileKey: p.profileKey, snapshotId: input.toId, previousSnapshotId: input.fromId, actor: input.actor, reason: 'replaced', workflowId: input.run.workflowId });
        }
        const pins = await tx.update(issues).set({ pinnedSnapshotId: input.toId }).where(eq(issues.pinnedSnapshotId, input.fromId)).returning({ id: issues.id });
        const movedAgents =
          input.agents === 'keep'
            ? []
            : await tx.update(agents).set({ snapshotId: input.toId, previousSnapshotId: input.fromId, updatedAt: new Date() }).where(eq(agents.snapshotId, input.fromId)).returning({ name: agents.name });
        const message = `replaced by ${input.toId}: ${moved.length} default(s), ${pins.length} pin(s), ${movedAgents.length} agent(s) moved${input.agents === 'keep' ? ' (agents: by rollout)' : ''}`;
        await tx.insert(snapshotEvents).values([
          { snapshotId: input.fromId, type: 'replaced', message, actor: input.actor, workflowId: input.run.workflowId, runId: input.run.runId },
          { snapshotId: input.toId, type: 'replaces', message: `replaces ${input.fromId}`, actor: input.actor, workflowId: input.run.workflowId, runId: input.run.runId },
        ]);
        return { defaults: moved.length, pins: pins.length, agents: movedAgents.length };
      });
    },

    /** Pending rows whose run may be gone; the reconciler checks each against Temporal. */
    async listPendingSnapshots(input: { olderThanSeconds: number }): Promise<Array<{ id: string; workflowId: string | null; runId: string | null }>> {
      return db
        .select({ id: snapshots.id, workflowId: snapshots.workflowId, runId: snapshots.runId })
        .from(snapshots)
        .where(and(inArray(snapshots.status, ['pending', 'deleting']), sql`${snapshots.updatedAt} < now() - make_interval(secs => ${input.olderThanSeconds})`))
        .limit(500);
    },
  };
}

export type CatalogActivities = ReturnType<typeof createCatalogActivities>;
