// One way to open the catalog: postgres.js underneath, drizzle with the full schema on top.
import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { SnapflowError } from '../lib/errors';
import * as access from './access';
import * as catalog from './schema';

const schema = { ...catalog, ...access };

export type Db = PostgresJsDatabase<typeof schema>;
/** The database or a transaction on it: what a helper that may run inside a caller's transaction takes. */
export type Queryable = Pick<Db, 'select' | 'insert' | 'update' | 'delete' | 'transaction'>;
export type Sql = postgres.Sql;

export interface DbHandle {
  db: Db;
  /** The raw postgres.js client, for the rare statement drizzle cannot express. */
  sql: Sql;
  close(): Promise<void>;
}

export function createDb(url: string, options: { max?: number; connectTimeoutSeconds?: number } = {}): DbHandle {
  // A small pool: workers run a handful of concurrent activities, not a web server's worth.
  const timeout = options.connectTimeoutSeconds === undefined ? {} : { connect_timeout: options.connectTimeoutSeconds };
  const sql = postgres(url, { max: options.max ?? 5, ...timeout, onnotice: () => {} });
  const db = drizzle(sql, { schema });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}

/** host:port/db of a connection URL; never the password, so it is safe to print. */
export function describeTarget(url: string): { host: string; port: string; database: string } {
  const parsed = new URL(url);
  return {
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port || '5432',
    database: decodeURIComponent(parsed.pathname.replace(/^\//, '')) || 'postgres',
  };
}

/** Walks drizzle's DrizzleQueryError → PostgresError / socket error chain to the first error with a code. */
export function errorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'CONNECT_TIMEOUT', 'ECONNRESET']);

/**
 * Connection-level failures become DATABASE_UNAVAILABLE with a hint a person can act on;
 * anything else (a constraint, a bad query) is returned unchanged.
 */
export function toDatabaseError(err: unknown, url: string): unknown {
  if (err instanceof SnapflowError) return err;
  const { host, port, database } = describeTarget(url);
  const code = errorCode(err);
  if (code && UNREACHABLE.has(code)) {
    return new SnapflowError({
      code: 'DATABASE_UNAVAILABLE',
      field: 'DATABASE_URL',
      message: `Postgres is not reachable at ${host}:${port} (${code})`,
      hint: 'start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`, or point DATABASE_URL at a running server',
    });
  }
  if (code === '3D000') {
    return new SnapflowError({
      code: 'DATABASE_UNAVAILABLE',
      field: 'DATABASE_URL',
      message: `database "${database}" does not exist on ${host}:${port}`,
      hint: 'run `npm run db:migrate`, which creates it',
    });
  }
  if (code === '28P01' || code === '28000') {
    return new SnapflowError({
      code: 'DATABASE_UNAVAILABLE',
      field: 'DATABASE_URL',
      message: `Postgres at ${host}:${port} rejected the credentials in DATABASE_URL`,
      hint: 'check the user and password in DATABASE_URL',
    });
  }
  return err;
}
