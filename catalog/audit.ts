// The audit trail: every authorization decision and the change it allowed, one row each.
import type { Queryable } from '../db/client';
import { auditEvents } from '../db/access';

export type NewAuditEvent = typeof auditEvents.$inferInsert;

export async function recordAudit(db: Pick<Queryable, 'insert'>, event: NewAuditEvent): Promise<void> {
  await db.insert(auditEvents).values(event);
}
