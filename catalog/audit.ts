// The audit trail: every authorization decision and the change it allowed, one row each.
import { desc, eq } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client';
import { auditEvents, type AuditEvent } from '../db/access';

export type { AuditEvent } from '../db/access';
export type NewAuditEvent = typeof auditEvents.$inferInsert;

export async function recordAudit(db: Pick<Queryable, 'insert'>, event: NewAuditEvent): Promise<void> {
  await db.insert(auditEvents).values(event);
}

/** The workspace's trail, newest first; `limit` is held to 1–500. */
export async function listAudit(db: Db, input: { workspace: string; limit: number }): Promise<AuditEvent[]> {
  return db
    .select()
    .from(auditEvents)
    .where(eq(auditEvents.workspace, input.workspace))
    .orderBy(desc(auditEvents.id))
    .limit(Math.min(Math.max(1, input.limit), 500));
}
