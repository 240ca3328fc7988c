// What the secret scan looks for, and what the suite leaves for it to read: every test catalog (scanned at teardown,
// before the database is dropped), every worker log line, and the payload keys needed to decrypt histories.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DbHandle } from '../../db/client';
import type { TestStackState } from './stackState';

/** GitHub installation tokens (the fake mints GitHub's `ghs_` format), private keys, the storage password. */
export function secretPatterns(stack: Pick<TestStackState, 'storage'>): Array<[string, RegExp]> {
  return [
    ['GitHub installation token', /ghs_[A-Za-z0-9]{36}/],
    ['private key', /PRIVATE KEY-----|MII[A-Za-z0-9+/]{60,}/],
    ['storage password', new RegExp(stack.storage.password.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))],
  ];
}

export const scanFiles = (dir: string) => ({
  catalog: join(dir, 'catalog-scan.jsonl'),
  workerLog: join(dir, 'worker.log'),
  payloadKeys: join(dir, 'payload-keys.jsonl'),
});

export function readJsonLines<T>(file: string): T[] {
  return existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as T)
    : [];
}

export interface CatalogScan {
  database: string;
  values: number;
  found: string[];
}

/** Every row of every table as text, searched for the secrets; the verdict is kept for the history scan. */
export async function scanCatalog(stack: TestStackState, db: DbHandle, database: string): Promise<CatalogScan> {
  const tables = await db.sql<
    Array<{ name: string }>
  >`select table_name as name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`;
  const patterns = secretPatterns(stack);
  const found: string[] = [];
  let values = 0;
  for (const { name } of tables) {
    const rows = await db.sql<Array<{ v: string }>>`select row_to_json(t)::text as v from ${db.sql(name)} t`;
    for (const { v } of rows) {
      values++;
      for (const [what, pattern] of patterns) if (pattern.test(v)) found.push(`${what} in table ${name}`);
    }
  }
  const scan = { database, values, found };
  appendFileSync(scanFiles(stack.dir).catalog, `${JSON.stringify(scan)}\n`);
  return scan;
}

/** A payload key a test file encrypts with, so the history scan can decrypt what it wrote. */
export function recordPayloadKey(stack: TestStackState, id: string, key: string): void {
  appendFileSync(scanFiles(stack.dir).payloadKeys, `${JSON.stringify({ id, key })}\n`);
}
