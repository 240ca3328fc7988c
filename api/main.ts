// `npm run api`: the HTTP API on SNAPFLOW_API_ADDRESS, as a trusted direct client of Temporal and the catalog.
import { SnapflowClient } from '../client';
import { createDb } from '../db/client';
import { loadConfig, loadDotEnv } from '../lib/config';
import { buildApi } from './server';

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  if (!config.actorKey) console.error('! SNAPFLOW_ACTOR_KEY is not set: workers take actors as named (a dev stack only)');
  const client = await SnapflowClient.connect(config);
  const database = createDb(config.databaseUrl);
  const app = await buildApi({ config, client, db: database.db, logger: process.env.SNAPFLOW_API_LOG === '1' });
  const [host, port] = [config.api.address.slice(0, config.api.address.lastIndexOf(':')), Number(config.api.address.split(':').pop())];
  await app.listen({ host, port });
  console.log(`snapflow API on http://${config.api.address} (docs http://${config.api.address}/docs)`);
  const stop = async (): Promise<void> => {
    await app.close();
    await client.close();
    await database.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
