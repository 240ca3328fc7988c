// Catalog writes that are safe to run twice. A write made under an attempt key records what it returned in the same
// transaction as its effect; a retry of the same activity (same key) after that commit gets the first answer back
// instead of a second effect or a refusal of its own write (a compare-and-set that sees its own new version).
import { eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../db/client';
import { activityEffects } from '../db/schema';

/** Records older than this are pruned: an activity's retries are bounded by minutes, not days. */
const KEEP = sql`now() - interval '1 day'`;
/** About one write in this many also prunes old records (cheap: the delete uses the created_at index). */
const PRUNE_EVERY = 64;

async function recorded<T>(db: Db, key: string): Promise<{ value: T } | undefined> {
  const [row] = await db.select({ result: activityEffects.result }).from(activityEffects).where(eq(activityEffects.key, key));
  return row ? { value: row.result.value as T } : undefined;
}

/**
 * Runs `work` in one transaction and records its result under `key`; if `key` already has a record, returns that
 * instead. A first attempt still committing while its retry runs (the retry timed out on a slow host) is covered
 * too: whatever the retry's own work throws (a CONFLICT, the key's unique violation), the key is looked up again
 * once that attempt has committed, and its result wins. Without a key (a caller outside an activity) it is plain `work`.
 */
export async function once<T>(db: Db, key: string | undefined, work: (tx: Db) => Promise<T>): Promise<T> {
  if (!key) return db.transaction((tx) => work(tx as unknown as Db));
  const before = await recorded<T>(db, key);
  if (before) return before.value;
  try {
    return await db.transaction(async (tx) => {
      const value = await work(tx as unknown as Db);
      await tx.insert(activityEffects).values({ key, result: { value } });
      if (Math.random() * PRUNE_EVERY < 1) await tx.delete(activityEffects).where(lt(activityEffects.createdAt, KEEP));
      return value;
    });
  } catch (err) {
    const after = await recorded<T>(db, key);
    if (after) return after.value;
    throw err;
  }
}
