// Control worker: every workflow, plus the catalog activities (the only worker with database access).
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createCatalogActivities } from '../activities/catalog';
import { createDb, type Db } from '../db/client';
import { assertMigrationsApplied } from '../db/migrate';
import { loadConfig, loadDotEnv } from '../lib/config';
import { taskQueues } from '../lib/ids';
import { connectWorker, exitWithError, workflowSource } from './options';

export interface ControlWorkerDeps {
  connection: NativeConnection;
  namespace: string;
  db: Db;
  bundlePath?: string;
}

export function createControlWorker(deps: ControlWorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: taskQueues.control,
    ...workflowSource(deps.bundlePath),
    activities: { ...createCatalogActivities({ db: deps.db }) },
    // Sized for 2 cores: workflow tasks are cheap, activities here are short database calls.
    maxConcurrentWorkflowTaskExecutions: 20,
    maxConcurrentActivityTaskExecutions: 20,
    maxCachedWorkflows: 250,
  });
}

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  await assertMigrationsApplied(config.databaseUrl); // refuse a stale schema up front
  const connection = await connectWorker(config);
  const database = createDb(config.databaseUrl);
  try {
    const worker = await createControlWorker({ connection, namespace: config.temporal.namespace, db: database.db });
    console.log(`control worker polling ${taskQueues.control} on ${config.temporal.address}`);
    await worker.run(); // returns after SIGINT/SIGTERM once in-flight tasks are done
  } finally {
    await database.close();
    await connection.close();
  }
}

if (require.main === module) main().catch((err) => exitWithError('control worker', err));
