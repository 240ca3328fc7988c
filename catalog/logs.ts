// The log store: every job's, image snapshot build's and golden build's output, in ordered chunks. Appends are
// keyed by (log, seq), so a retried append of chunk N changes nothing; a log is opened once and closed once.
import { and, asc, desc, eq, gt, gte, isNotNull, like, lt, sql } from 'drizzle-orm';
import type { Queryable } from '../db/client';
import { logChunks, logs } from '../db/schema';

export type LogKind = 'job' | 'snapshot' | 'golden';
export type LogStream = 'stdout' | 'stderr' | 'note';

/** Where a log is: what a job result and a build status point at. */
export interface LogRef {
  id: string;
  kind: LogKind;
  subject: string;
  job?: number;
  /**
   * First sequence number this writer uses. A build log has several writers one after another (the workflow's
   * step notes, each host step's output): each writes in its own segment, so their appends never collide.
   */
  seqBase?: number;
}

export interface LogChunk {
  seq: number;
  stream: LogStream;
  at: Date;
  data: Buffer;
}

export interface LogSummary {
  id: string;
  kind: LogKind;
  subject: string;
  job: number | null;
  open: boolean;
  outcome: string | null;
  exitCode: number | null;
  bytes: number;
  dropped: number;
  cutAt: number | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface LogClose {
  outcome: string;
  exitCode?: number;
  bytes: number;
  dropped: number;
  cutAt?: number;
}

/** What a host writes through: the store's write half (the catalog's, or any other backend's). */
export interface LogSink {
  open(ref: LogRef): Promise<void>;
  append(logId: string, chunks: Array<Omit<LogChunk, 'at'> & { at?: Date }>): Promise<void>;
  close(logId: string, close: LogClose): Promise<void>;
}

export const jobLogId = (sandboxId: string, job: number): string => `job:${sandboxId}:${job}`;

/** Sequence numbers per segment of a build log: 2^24 chunks (4 TiB at 256 KiB) each, 127 segments. */
export const LOG_SEGMENT = 2 ** 24;
/** Segments of an image snapshot's log: its steps in order, then the end (the outcome). */
export const SNAPSHOT_LOG_SEGMENTS = { resolve: 1, pull: 3, verify: 5, boot: 6, store: 7, end: 100 } as const;

/** Segments of a golden build's log: each preload step, the boot check, the vm targets' boots and saves, then the end. */
export const GOLDEN_LOG_SEGMENTS = { preload: 1, skills: 2, deps: 3, boot: 4, vm: 5, end: 100 } as const;

export function goldenLogRef(buildId: string, segment: keyof typeof GOLDEN_LOG_SEGMENTS): LogRef {
  return { id: `golden:${buildId}`, kind: 'golden', subject: buildId, seqBase: GOLDEN_LOG_SEGMENTS[segment] * LOG_SEGMENT };
}

/** The writer ref of one segment of a snapshot's build log: the step's note at `+0`, the host's output after it. */
export function snapshotLogRef(snapshotId: string, segment: keyof typeof SNAPSHOT_LOG_SEGMENTS, offset = 0): LogRef {
  return {
    id: `snapshot:${snapshotId}`,
    kind: 'snapshot',
    subject: snapshotId,
    seqBase: SNAPSHOT_LOG_SEGMENTS[segment] * LOG_SEGMENT + offset,
  };
}
export const snapshotLogId = (snapshotId: string): string => `snapshot:${snapshotId}`;
export const goldenLogId = (buildId: string): string => `golden:${buildId}`;

/** Opens a log (idempotent), and lets logs closed longer ago than `retentionDays` go. */
export async function openLog(db: Queryable, ref: LogRef, retentionDays?: number): Promise<void> {
  await db
    .insert(logs)
    .values({ id: ref.id, kind: ref.kind, subject: ref.subject, job: ref.job ?? null })
    .onConflictDoNothing();
  if (retentionDays !== undefined) await pruneLogs(db, retentionDays);
}

export async function appendLog(db: Queryable, logId: string, chunks: Array<Omit<LogChunk, 'at'> & { at?: Date }>): Promise<void> {
  if (!chunks.length) return;
  await db
    .insert(logChunks)
    .values(chunks.map((c) => ({ logId, seq: c.seq, stream: c.stream, at: c.at ?? new Date(), data: c.data })))
    .onConflictDoNothing();
}

/** Closes a log once: a second close (a retry) keeps the first one's figures. */
export async function closeLog(db: Queryable, logId: string, close: LogClose): Promise<void> {
  await db
    .update(logs)
    .set({
      open: false,
      outcome: close.outcome,
      exitCode: close.exitCode ?? null,
      bytes: close.bytes,
      dropped: close.dropped,
      cutAt: close.cutAt ?? null,
      finishedAt: new Date(),
    })
    .where(and(eq(logs.id, logId), eq(logs.open, true)));
}

/** Logs closed more than `days` ago go, with their chunks. */
export async function pruneLogs(db: Queryable, days: number): Promise<number> {
  const gone = await db
    .delete(logs)
    .where(and(isNotNull(logs.finishedAt), lt(logs.finishedAt, sql`now() - make_interval(days => ${days})`)))
    .returning({ id: logs.id });
  return gone.length;
}

export async function findLog(db: Queryable, logId: string): Promise<LogSummary | undefined> {
  const [row] = await db.select().from(logs).where(eq(logs.id, logId));
  return row as LogSummary | undefined;
}

/** The newest job log of a sandbox (the last job), or undefined. */
export async function lastJobLog(db: Queryable, sandboxId: string): Promise<LogSummary | undefined> {
  const [row] = await db
    .select()
    .from(logs)
    .where(and(eq(logs.kind, 'job'), eq(logs.subject, sandboxId)))
    .orderBy(desc(logs.job))
    .limit(1);
  return row as LogSummary | undefined;
}

/** The newest log of a golden build's or snapshot's id prefix (a build id may be given shortened). */
export async function findLogByPrefix(db: Queryable, kind: LogKind, prefix: string): Promise<LogSummary[]> {
  const rows = await db
    .select()
    .from(logs)
    .where(and(eq(logs.kind, kind), like(logs.subject, `${prefix.replace(/[%_\\]/g, '')}%`)))
    .orderBy(desc(logs.createdAt))
    .limit(2);
  return rows as LogSummary[];
}

/** The last `lines` lines of a log (its last 64 chunks at most), as text. */
export async function logTail(db: Queryable, logId: string, lines = 20): Promise<string> {
  const rows = await db
    .select({ data: logChunks.data })
    .from(logChunks)
    .where(eq(logChunks.logId, logId))
    .orderBy(desc(logChunks.seq))
    .limit(64);
  const text = Buffer.concat(rows.reverse().map((r) => r.data))
    .toString('utf8')
    .replace(/\n+$/, '');
  return text.split('\n').slice(-lines).join('\n');
}

/** Up to `limit` chunks after `afterSeq`, in order; `since` keeps only chunks written at or after it. */
export async function readLogChunks(
  db: Queryable,
  logId: string,
  opts: { afterSeq?: number; since?: Date; limit?: number } = {},
): Promise<LogChunk[]> {
  const rows = await db
    .select({ seq: logChunks.seq, stream: logChunks.stream, at: logChunks.at, data: logChunks.data })
    .from(logChunks)
    .where(and(eq(logChunks.logId, logId), gt(logChunks.seq, opts.afterSeq ?? -1), ...(opts.since ? [gte(logChunks.at, opts.since)] : [])))
    .orderBy(asc(logChunks.seq))
    .limit(opts.limit ?? 256);
  return rows as LogChunk[];
}

/** The catalog as a log sink. */
export function catalogLogSink(db: Queryable, opts: { retentionDays?: number } = {}): LogSink {
  return {
    open: (ref) => openLog(db, ref, opts.retentionDays),
    append: (logId, chunks) => appendLog(db, logId, chunks),
    close: (logId, close) => closeLog(db, logId, close),
  };
}
