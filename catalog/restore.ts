// Restore resolution's catalog side: everything lib/restoreOrder.ts needs about one sandbox, in one round trip.
// Every lookup is by primary key (sandbox, host, issue, snapshot, fork point, default pointer) or host_cache's snapshot index,
// and the statement is prepared once per connection: planning it costs more than running it.
import { eq, sql, type Placeholder, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client';
import { hosts, issues, sandboxes } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import { SYSTEM_SCOPE } from '../lib/ids';
import { PROFILE_KEY } from '../lib/presets';
import type { RestoreBase, RestoreCandidate, RestoreInput, RestoreSandbox } from '../lib/restoreOrder';

export interface LoadRestoreInput {
  sandboxId: string;
  /** Fix the host the run will use; only a copy cached there then counts (see RestoreInput.hostId). */
  hostId?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A value in place (EXPLAIN) or a placeholder (the prepared statement). */
type Param = Placeholder | string | null;

/** One snapshot as a RestoreCandidate (json) with the hosts holding it: online ones, and the fixed host. Null when none. */
function candidate(snapshotId: SQL, hostId: Param): SQL<RestoreCandidate | null> {
  return sql<RestoreCandidate | null>`(
    select json_build_object(
      'id', c.id, 'workspace', c.workspace, 'name', c.name, 'kind', c.kind, 'status', c.status, 'profileKey', c.profile_key,
      'storedRef', c.stored_ref, 'sourceImage', c.source_image, 'machineProfile', c.machine_profile, 'sandboxId', c.sandbox_id,
      'cachedOn', coalesce((
        select json_agg(hc.host_id order by hc.host_id)
        from host_cache hc join hosts ch on ch.id = hc.host_id
        where hc.snapshot_id = c.id and (ch.status = 'online' or hc.host_id = ${hostId})
      ), '[]'::json))
    from snapshots c where c.id = ${snapshotId}
  )`;
}

/** Host → the machine profile it restores a saved vm of the sandbox's size onto (online hosts, and the fixed one). */
const machines = (hostId: Param): SQL =>
  sql`coalesce((
    select json_object_agg(mh.id, mh.vm_profiles ->> ${sandboxes.size})
    from hosts mh where (mh.status = 'online' or mh.id = ${hostId}) and mh.vm_profiles ->> ${sandboxes.size} is not null
  ), '{}'::json)`;

/** The sandbox's base snapshot: its agent's snapshot as it is now, else the one it was created from (null: built-in base). */
const baseId = sql`coalesce((select a.snapshot_id from agents a where a.id = ${sandboxes.agentId}), ${sandboxes.baseSnapshotId})`;

/** The base as a RestoreBase (json); null for the built-in base, or a base that is not in snapshot storage. */
const base = sql<RestoreBase | null>`(
  select json_build_object('snapshotId', b.id, 'name', b.name, 'storedRef', b.stored_ref, 'entrypoint', b.entrypoint,
    'agent', (select a.name from agents a where a.id = ${sandboxes.agentId}))
  from snapshots b where b.id = ${baseId} and b.stored_ref is not null
)`;

/** lib/presets.ts profileKey of an image base, as SQL over columns: built from the same parts (PROFILE_KEY). */
function profileKeySql(runtime: SQL, size: SQL, storedRef: SQL): SQL<string> {
  const { separator, base, refDigest, digestChars } = PROFILE_KEY;
  const text = (s: string) => sql.raw(`'${s}'`); // constants of lib/presets.ts, never input
  const digest = sql`substr(split_part(${storedRef}, ${text(refDigest)}, 2), 1, ${sql.raw(String(digestChars))})`;
  return sql<string>`${runtime}::text || ${text(separator)} || ${size} || ${text(separator + base)} || ${digest}`;
}

/** The profile the sandbox runs now: on an image base it names that base's digest. */
const currentProfile = sql<string>`coalesce((
  select ${profileKeySql(sql`${sandboxes.runtime}`, sql`${sandboxes.size}`, sql`b.stored_ref`)}
  from snapshots b where b.id = ${baseId} and b.stored_ref is not null
), ${sandboxes.profileKey})`;

/** The default pointer's snapshot for the sandbox's size and current profile in `workspace`. */
const pointer = (workspace: SQL): SQL =>
  sql`(select dp.snapshot_id from default_pointers dp where dp.workspace = ${workspace} and dp.size = ${sandboxes.size} and dp.profile_key = ${currentProfile})`;

function restoreInputSelect(db: Db, params: { sandboxId: Param; hostId: Param }) {
  return db
    .select({
      sandbox: sql<RestoreSandbox>`json_build_object(
        'id', ${sandboxes.id}, 'workspace', ${sandboxes.workspace}, 'class', ${sandboxes.class}, 'size', ${sandboxes.size},
        'profileKey', ${currentProfile}, 'keepAlive', ${sandboxes.keepAlive}, 'state', ${sandboxes.state},
        'hostId', ${sandboxes.hostId}, 'hostStatus', ${hosts.status}, 'containerId', ${sandboxes.containerId}, 'issueId', ${sandboxes.issueId},
        'machines', ${machines(params.hostId)})`,
      session: candidate(sql`${sandboxes.latestSessionSnapshotId}`, params.hostId),
      fork: candidate(sql`${sandboxes.forkedFromSnapshotId}`, params.hostId),
      pin: candidate(sql`${issues.pinnedSnapshotId}`, params.hostId),
      workspaceDefault: candidate(pointer(sql`${sandboxes.workspace}`), params.hostId),
      systemDefault: candidate(pointer(sql`${SYSTEM_SCOPE}`), params.hostId),
      base,
    })
    .from(sandboxes)
    .leftJoin(hosts, eq(hosts.id, sandboxes.hostId))
    .leftJoin(issues, eq(issues.id, sandboxes.issueId))
    .where(sql`${sandboxes.id} = ${params.sandboxId}`);
}

/** The statement behind readRestoreInput with the values in place, for EXPLAIN (the benchmark prints its plan). */
export function restoreInputQuery(db: Db, input: LoadRestoreInput): SQL {
  return restoreInputSelect(db, { sandboxId: input.sandboxId, hostId: input.hostId ?? null }).getSQL();
}

const prepare = (db: Db) =>
  restoreInputSelect(db, { sandboxId: sql.placeholder('sandboxId'), hostId: sql.placeholder('hostId') }).prepare('snapflow_restore_input');
const prepared = new WeakMap<Db, ReturnType<typeof prepare>>();

/** Shared by the activity and the client: the sandbox, its host and issue, and the four candidates, in one query. */
export async function readRestoreInput(db: Db, input: LoadRestoreInput): Promise<RestoreInput> {
  if (!UUID.test(input.sandboxId))
    throw new SnapflowError({ code: 'VALIDATION_FAILED', field: 'sandbox', message: `"${input.sandboxId}" is not a sandbox id (a UUID)` });
  let statement = prepared.get(db);
  if (!statement) prepared.set(db, (statement = prepare(db)));
  const hostId = input.hostId ?? null;
  const [row] = await statement.execute({ sandboxId: input.sandboxId, hostId });
  if (!row) throw new SnapflowError({ code: 'NOT_FOUND', field: 'sandbox', message: `sandbox ${input.sandboxId} does not exist` });
  return { ...row, hostId };
}
