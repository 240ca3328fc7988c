// Each test file gets its own throwaway database on the local server, migrated like production.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { ensureDatabase, runMigrations } from '../../db/migrate';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Base server for test databases; its path is ignored (we always create a fresh database). */
const baseUrl = (): string => process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function createTestDatabase(options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const name = `snapflow_test_${randomBytes(6).toString('hex')}`;
  const url = new URL(baseUrl());
  url.pathname = `/${name}`;
  await ensureDatabase(url.toString());
  if (options.migrate ?? true) await runMigrations(url.toString());

  return {
    url: url.toString(),
    async drop() {
      const admin = new URL(baseUrl());
      admin.pathname = '/postgres';
      const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
      try {
        // FORCE terminates pooled connections a test forgot to close, so the drop never hangs.
        await sql`drop database if exists ${sql(name)} with (force)`;
      } finally {
        await sql.end({ timeout: 5 });
      }
    },
  };
}
