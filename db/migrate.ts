// Applies the committed migrations (db/migrations) and answers "is this database up to date?".
// `npm run db:migrate` runs this file: it creates the database if missing, then migrates.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/postgres-js';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { loadConfig, loadDotEnv } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { describeTarget, errorCode, toDatabaseError } from './client';

const migrationsFolder = path.join(__dirname, 'migrations');

interface JournalEntry {
  idx: number;
  tag: string;
  /** Folder millis: drizzle's migrator applies every entry newer than the last recorded created_at. */
  when: number;
}

export function migrationJournal(): JournalEntry[] {
  const raw = readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8');
  return (JSON.parse(raw) as { entries: JournalEntry[] }).entries;
}

function connect(url: string): postgres.Sql {
  return postgres(url, { max: 1, onnotice: () => {} });
}

/** Creates the target database when it does not exist yet (dev machines, CI, test databases). */
export async function ensureDatabase(url: string): Promise<void> {
  const probe = connect(url);
  try {
    await probe`select 1`;
    return;
  } catch (err) {
    if (errorCode(err) !== '3D000') throw toDatabaseError(err, url);
  } finally {
    await probe.end({ timeout: 5 });
  }
  const { database } = describeTarget(url);
  const maintenanceUrl = new URL(url);
  maintenanceUrl.pathname = '/postgres';
  const admin = connect(maintenanceUrl.toString());
  try {
    // sql(name) quotes the identifier; the name comes from configuration, never from a request.
    await admin`create database ${admin(database)}`;
  } catch (err) {
    if (errorCode(err) !== '42P04') throw toDatabaseError(err, url); // 42P04: created concurrently, fine
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** Idempotent; concurrent callers (several workers starting at once) serialise on an advisory lock. */
export async function runMigrations(url: string): Promise<void> {
  const sql = connect(url);
  try {
    // max: 1 means the lock and the migration share one session; ending it releases the lock.
    await sql`select pg_advisory_lock(hashtext('snapflow:migrate'))`;
    await migrate(drizzle(sql), { migrationsFolder });
  } catch (err) {
    throw toDatabaseError(err, url);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** How many committed migrations this database has not applied yet; 0 when up to date. */
export async function pendingMigrations(url: string): Promise<number> {
  const journal = migrationJournal();
  const sql = connect(url);
  try {
    const [table] = await sql<{ exists: boolean }[]>`
      select to_regclass('drizzle.__drizzle_migrations') is not null as exists`;
    if (!table?.exists) return journal.length;
    const [row] = await sql<{ last: string | null }[]>`
      select max(created_at)::text as last from drizzle.__drizzle_migrations`;
    const last = row?.last == null ? -Infinity : Number(row.last);
    return journal.filter((entry) => entry.when > last).length;
  } catch (err) {
    throw toDatabaseError(err, url);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** For entry points: refuse to start against a stale schema rather than fail on the first query. */
export async function assertMigrationsApplied(url: string): Promise<void> {
  const pending = await pendingMigrations(url);
  if (pending > 0) {
    throw new SnapflowError({
      code: 'MIGRATIONS_PENDING',
      message: `${pending} database migration(s) not applied to ${describeTarget(url).database}`,
      hint: 'run `npm run db:migrate`',
    });
  }
}

/** The most specific message in a drizzle → postgres error chain (drizzle's own repeats the SQL). */
function rootMessage(err: unknown): string {
  let current: unknown = err;
  let message = String(err);
  for (let depth = 0; current && depth < 5; depth++) {
    if (current instanceof Error) message = current.message;
    if (current instanceof SnapflowError) break;
    current = (current as { cause?: unknown }).cause;
  }
  return message;
}

async function main(): Promise<void> {
  loadDotEnv();
  const { databaseUrl } = loadConfig();
  await ensureDatabase(databaseUrl);
  await runMigrations(databaseUrl);
  console.log(`migrations applied: ${describeTarget(databaseUrl).database} (${migrationJournal().length} total)`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`✗ db:migrate failed: ${rootMessage(err)}`);
    if (err instanceof SnapflowError && err.hint) console.error(`  hint: ${err.hint}`);
    if (process.env.SNAPFLOW_DEBUG === '1') console.error(err);
    process.exit(1);
  });
}
