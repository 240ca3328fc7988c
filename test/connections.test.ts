// GitHub connection records: what validation writes, and what it must not write.
import { ApplicationFailure } from '@temporalio/common';
import { createConnectionActivities } from '../activities/connections';
import { createGithubTokens } from '../activities/githubTokens';
import { createDb, type DbHandle } from '../db/client';
import { githubConnections } from '../db/schema';
import { createTestDatabase, type TestDatabase } from './support/db';

let database: TestDatabase;
let db: DbHandle;
beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
});
afterAll(async () => {
  await db?.close();
  await database?.drop();
});

test('connect without a GitHub App configured fails typed and records no connection', async () => {
  const activities = createConnectionActivities({ db: db.db, tokens: createGithubTokens(undefined) });
  const failure = await activities.validateGithubConnection({ workspace: 'ws-noapp', installationId: 42 }).catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: 'GITHUB_APP_NOT_CONFIGURED', nonRetryable: true });
  expect(await db.db.select().from(githubConnections)).toEqual([]);
});
