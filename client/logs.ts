// Reading the log store: a finished log whole, or a running one followed as it grows. Shared by job, snapshot
// and golden logs; every chunk is handed out once, in order, as the bytes that were written.
import { findLog, readLogChunks, type LogChunk } from '../catalog/logs';
import type { Db } from '../db/client';
import { SnapflowError } from '../lib/errors';

/** How often a followed log is read again while it is open. */
const FOLLOW_POLL_MS = 100;
/** Rows per read: 64 chunks of at most 256 KiB. */
const READ_ROWS = 64;

export interface ReadLogOptions {
  /** Keep reading while the log is open (a running job or build), until it closes or `signal` aborts. */
  follow?: boolean;
  /** Only chunks written at or after this time. */
  since?: Date;
  signal?: AbortSignal;
}

export async function* readLog(db: Db, logId: string, opts: ReadLogOptions = {}): AsyncGenerator<LogChunk> {
  let after = -1;
  for (;;) {
    if (opts.signal?.aborted) return;
    // Asked before reading: a log seen closed has all its chunks in, so one read after that is the last.
    const open = opts.follow ? (await findLog(db, logId))?.open === true : false;
    for (;;) {
      const chunks = await readLogChunks(db, logId, { afterSeq: after, since: opts.since, limit: READ_ROWS });
      for (const chunk of chunks) {
        after = chunk.seq;
        yield chunk;
      }
      if (chunks.length < READ_ROWS) break;
    }
    if (!open) return;
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
  }
}

/** `--since`: a duration back from now (`90s`, `10m`, `2h`, `1d`) or an ISO time. */
export function parseSince(value: string | Date | undefined): Date | undefined {
  if (value === undefined || value instanceof Date) return value;
  const ago = /^(\d{1,9})(s|m|h|d)$/.exec(value.trim());
  if (ago) return new Date(Date.now() - Number(ago[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[ago[2] as 's']);
  const at = new Date(value);
  if (!Number.isNaN(at.getTime()) && /^\d{4}-\d{2}-\d{2}/.test(value)) return at;
  throw new SnapflowError({
    code: 'VALIDATION_FAILED',
    field: 'since',
    message: `since must be a duration like 10m or an ISO time like 2026-01-31T12:00:00Z, not ${JSON.stringify(value.slice(0, 60))}`,
    hint: 'e.g. --since 10m',
  });
}
