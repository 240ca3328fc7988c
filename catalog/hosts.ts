// Hosts and their snapshot cache: the rows host workers announce, placement by free memory, and which
// snapshots each host's engine holds.
import { and, eq, gte, inArray, ne, sql } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { hostCache, hosts } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import type { HostFacts } from '../lib/hosts';
import { SYSTEM_SCOPE } from '../lib/ids';
import { findPreset } from '../lib/presets';
import { audited, type Caller } from './access';

export interface EvictionCandidate {
  storedRef: string;
  /** Every snapshot on this host that shares the image (one build registers one per target). */
  snapshotIds: string[];
}

/** Records a host as online with what its engine reported; the host id is the key. */
export async function saveHost(db: Db, input: HostFacts & { taskQueue: string }): Promise<void> {
  const row = {
    id: input.hostId,
    taskQueue: input.taskQueue,
    dockerEndpoint: input.dockerHost,
    memoryTotalMib: input.memoryTotalMiB,
    vmProfiles: input.vm?.profiles ?? null,
    status: 'online' as const,
    lastSeenAt: new Date(),
  };
  // A host an operator drains stays draining when its worker announces itself again; only `undrain` ends it.
  await db
    .insert(hosts)
    .values(row)
    .onConflictDoUpdate({
      target: hosts.id,
      set: { ...row, status: sql`case when ${hosts.status} = 'draining' then 'draining'::host_status else 'online'::host_status end` },
    });
}

/**
 * Where a new sandbox or image pull goes: the online host with the most memory left after the sandboxes
 * already running there (catalog estimate, no Docker round trip), ties spread at random. Typed when none fits.
 */
export async function chooseHost(db: Db, input: { size: string }): Promise<{ hostId: string }> {
  const needMiB = findPreset(input.size)?.memoryMiB ?? 0;
  const rows = await db.execute<{ id: string; free: number }>(sql`
    select h.id, h.memory_total_mib - coalesce(sum(p.memory_mib) filter (where b.state in ('provisioning', 'idle', 'busy', 'snapshotting', 'promoting')), 0)::int as free
    from hosts h left join sandboxes b on b.host_id = h.id left join size_presets p on p.key = b.size
    where h.status = 'online' group by h.id order by free desc, random()`);
  const [best] = rows;
  if (!best)
    throw new SnapflowError({
      code: 'DOCKER_UNAVAILABLE',
      message: 'no Docker host is online',
      hint: 'start a host worker: `npm run worker:host` (or undrain one: `snapflow host undrain <id>`)',
    });
  if (best.free < needMiB) {
    throw new SnapflowError({
      code: 'INSUFFICIENT_HOST_MEMORY',
      message: `no online host has ${needMiB} MiB free for size ${input.size} (most free: ${best.id} with ${best.free} MiB)`,
      hint: 'add a host, stop idle sandboxes, or use a smaller size',
    });
  }
  return { hostId: best.id };
}

/** Drain: no new work is placed on the host; its sandboxes restore elsewhere from storage on their next start. */
export async function changeHostStatus(
  db: Pick<Queryable, 'update'>,
  input: { hostId: string; status: 'online' | 'draining' },
): Promise<{ found: boolean }> {
  const updated = await db.update(hosts).set({ status: input.status }).where(eq(hosts.id, input.hostId)).returning({ id: hosts.id });
  return { found: updated.length > 0 };
}

/** Hosts not offline (online or draining), by id: each should answer through its worker. */
export async function hostsInService(db: Db): Promise<string[]> {
  return (await db.select({ id: hosts.id }).from(hosts).where(ne(hosts.status, 'offline')).orderBy(hosts.id)).map((h) => h.id);
}

export async function onlineHosts(db: Db): Promise<Array<{ hostId: string }>> {
  return (await db.select({ hostId: hosts.id }).from(hosts).where(eq(hosts.status, 'online')).orderBy(hosts.id)).map((h) => h);
}

/** Online hosts, other than the builder, whose memory fits `minMemoryMiB`: they serve that size. */
export async function hostsWithMemory(
  db: Db,
  input: { minMemoryMiB: number; exceptHostId?: string },
): Promise<Array<{ hostId: string; memoryTotalMiB: number }>> {
  const rows = await db
    .select({ hostId: hosts.id, memoryTotalMiB: hosts.memoryTotalMib })
    .from(hosts)
    .where(
      and(
        eq(hosts.status, 'online'),
        gte(hosts.memoryTotalMib, input.minMemoryMiB),
        input.exceptHostId ? ne(hosts.id, input.exceptHostId) : undefined,
      ),
    )
    .orderBy(hosts.id);
  return rows;
}

/** The host that built or pulled an image holds it: record that, so placement can prefer it. */
export async function markCached(db: Db, input: { hostId: string; snapshotIds: string[] }): Promise<void> {
  if (input.snapshotIds.length === 0) return;
  await db
    .insert(hostCache)
    .values(input.snapshotIds.map((snapshotId) => ({ hostId: input.hostId, snapshotId })))
    .onConflictDoUpdate({ target: [hostCache.hostId, hostCache.snapshotId], set: { lastUsedAt: new Date() } });
}

/**
 * Images on a host the cache may drop: never one behind a default, a pin or a sandbox's latest session;
 * of the rest, the `keep` most recently used stay. Grouped by image, since one build's image
 * backs a snapshot per target and must not be evicted while any of them is kept.
 */
export async function evictableImages(db: Db, input: { hostId: string; keep: number }): Promise<EvictionCandidate[]> {
  const rows = await db.execute<{ stored_ref: string; snapshot_ids: string[] }>(sql`
    with cached as (
      select s.stored_ref,
             array_agg(s.id::text) as snapshot_ids,
             max(hc.last_used_at) as last_used,
             bool_or(exists (select 1 from default_pointers d where d.snapshot_id = s.id)
                  or exists (select 1 from issues i where i.pinned_snapshot_id = s.id)
                  or exists (select 1 from sandboxes b where b.latest_session_snapshot_id = s.id)) as in_use
      from host_cache hc join snapshots s on s.id = hc.snapshot_id
      where hc.host_id = ${input.hostId} and s.stored_ref is not null
      group by s.stored_ref
    )
    select stored_ref, snapshot_ids from cached where not in_use order by last_used desc offset ${input.keep}`);
  return rows.map((r) => ({ storedRef: r.stored_ref, snapshotIds: r.snapshot_ids }));
}

export async function unmarkCached(db: Db, input: { hostId: string; snapshotIds: string[] }): Promise<void> {
  if (input.snapshotIds.length === 0) return;
  await db.delete(hostCache).where(and(eq(hostCache.hostId, input.hostId), inArray(hostCache.snapshotId, input.snapshotIds)));
}

/**
 * Drain or undrain a host: operators only (the system scope), decided and audited here in the same transaction as the
 * change, so every caller — the client, a service, a script — goes through the same check.
 */
export async function setHostPlacement(db: Db, caller: Caller, input: { hostId: string; status: 'online' | 'draining' }): Promise<void> {
  await audited(db, caller, SYSTEM_SCOPE, 'workspace.manage', `host ${input.hostId} ${input.status}`, async (tx) => {
    const updated = await tx.update(hosts).set({ status: input.status }).where(eq(hosts.id, input.hostId)).returning({ id: hosts.id });
    if (updated.length === 0)
      throw new SnapflowError({
        code: 'NOT_FOUND',
        field: 'hostId',
        message: `no host ${input.hostId} in the catalog`,
        hint: 'hosts appear once their worker has started; `snapflow doctor` lists them',
      });
  });
}
