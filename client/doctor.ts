// `snapflow doctor`: one line per part of the stack, ✓ / ! / ✗ with the fix. Never throws.
import { temporal } from '@temporalio/proto';
import postgres from 'postgres';
import { createGithubApp } from '../lib/githubApp';
import { hostsInService } from '../catalog/hosts';
import { createDb, describeTarget, toDatabaseError } from '../db/client';
import { pendingMigrations } from '../db/migrate';
import { loadConfig, type Config } from '../lib/config';
import { describeFailure } from '../lib/errors';
import { SEARCH_ATTRIBUTES, taskQueues } from '../lib/ids';
import { describeTemporal } from '../lib/temporalConnection';
import { SnapflowClient } from './index';

export type CheckStatus = 'ok' | 'warn' | 'fail';
export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

const TaskQueueType = temporal.api.enums.v1.TaskQueueType;

function failed(name: string, err: unknown): Check {
  const failure = describeFailure(err);
  return { name, status: 'fail', detail: failure.message, fix: failure.hint };
}

async function checkPostgres(config: Config): Promise<Check> {
  const target = describeTarget(config.databaseUrl);
  const where = `${target.host}:${target.port}/${target.database}`;
  const sql = postgres(config.databaseUrl, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    const pending = await pendingMigrations(config.databaseUrl);
    if (pending > 0)
      return { name: 'postgres', status: 'fail', detail: `${where}: ${pending} migration(s) not applied`, fix: 'run `npm run db:migrate`' };
    return { name: 'postgres', status: 'ok', detail: `${where}, migrations up to date` };
  } catch (err) {
    const failure = describeFailure(toDatabaseError(err, config.databaseUrl));
    return { name: 'postgres', status: 'fail', detail: failure.message, fix: failure.hint };
  } finally {
    await sql.end({ timeout: 2 });
  }
}

/** A live poller has polled within the last long-poll window (about a minute). */
async function hasLivePoller(client: SnapflowClient, namespace: string, queue: string, type: number): Promise<boolean> {
  const response = await client.temporal.workflowService.describeTaskQueue({ namespace, taskQueue: { name: queue }, taskQueueType: type });
  const cutoff = Date.now() - 90_000;
  return (response.pollers ?? []).some((p) => Number(p.lastAccessTime?.seconds ?? 0) * 1000 >= cutoff);
}

async function checkTemporalAndWorkers(config: Config): Promise<Check[]> {
  const { address, namespace } = config.temporal;
  const transport = describeTemporal(config.temporal.connection.describe);
  let client: SnapflowClient;
  try {
    client = await SnapflowClient.connect(config, { connectTimeout: '3 seconds' });
    await client.temporal.workflowService.getSystemInfo({});
  } catch (err) {
    const failure = describeFailure(err);
    return [
      {
        name: 'temporal',
        status: 'fail',
        detail: `${failure.message} (${transport})`,
        fix: failure.hint ?? 'start the stack with `npm start`',
      },
    ];
  }
  const checks: Check[] = [];
  try {
    const { customAttributes } = await client.temporal.connection.operatorService.listSearchAttributes({ namespace });
    const missing = SEARCH_ATTRIBUTES.filter((name) => !(customAttributes ?? {})[name]);
    checks.push(
      missing.length === 0
        ? {
            name: 'temporal',
            status: 'ok',
            detail: `${transport}, search attributes registered, UI ${config.temporal.uiUrl}`,
          }
        : {
            name: 'temporal',
            status: 'fail',
            detail: `${address}: search attributes missing: ${missing.join(', ')}`,
            fix: missing
              .map((n) => `temporal operator search-attribute create --namespace ${namespace} --name ${n} --type Keyword`)
              .join(' && '),
          },
    );
    const controlLive = await hasLivePoller(client, namespace, taskQueues.control, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW);
    checks.push(
      controlLive
        ? { name: 'control worker', status: 'ok', detail: `polling ${taskQueues.control}` }
        : {
            name: 'control worker',
            status: 'fail',
            detail: `nothing polls ${taskQueues.control}`,
            fix: 'start it: `npm run worker:control`',
          },
    );
    if (controlLive) checks.push(...(await checkHosts(config, client)));
  } catch (err) {
    checks.push(failed('temporal', err));
  } finally {
    await client.close();
  }
  return checks;
}

/** Every host in the catalog answers through its own worker, which talks to its own dockerd. */
async function checkHosts(config: Config, client: SnapflowClient): Promise<Check[]> {
  let hostIds: string[];
  const catalog = createDb(config.databaseUrl, { max: 1, connectTimeoutSeconds: 3 });
  try {
    hostIds = await hostsInService(catalog.db);
  } catch {
    return []; // the postgres line already says why
  } finally {
    await catalog.sql.end({ timeout: 2 });
  }
  if (hostIds.length === 0) {
    return [
      {
        name: 'docker hosts',
        status: 'fail',
        detail: 'no host worker has registered',
        fix: 'start one: `npm run worker:host` (DOCKER_HOST, SNAPFLOW_HOST_ID)',
      },
    ];
  }
  return Promise.all(
    hostIds.map(async (hostId): Promise<Check> => {
      const name = `host ${hostId}`;
      try {
        const facts = await client.refreshHost(hostId);
        const base = facts.baseImagePresent ? 'base image present' : 'base image missing';
        // vm sandboxes: the accel the probe chose and why, or why this host runs none.
        const vm = !facts.vm
          ? ''
          : 'accel' in facts.vm
            ? `; vm: ${facts.vm.accel} (${facts.vm.detail})`
            : `; vm: unavailable (${facts.vm.unavailable})`;
        const vmMissing = Boolean(facts.vm && !('accel' in facts.vm));
        return {
          name,
          status: facts.baseImagePresent && !vmMissing ? 'ok' : 'warn',
          detail: `Docker ${facts.dockerVersion} at ${facts.dockerHost}, ${facts.cpus} CPU, ${(facts.memoryTotalMiB / 1024).toFixed(1)} GiB, ${base}${vm}`,
          fix: !facts.baseImagePresent
            ? 'run `npm start` once on that host (it imports snapflow/base offline)'
            : vmMissing
              ? 'run `bash scripts/provision.sh` on that host (QEMU, the guest kernel and agent)'
              : undefined,
        };
      } catch (err) {
        const failure = describeFailure(err);
        const fix =
          failure.code === 'TIMED_OUT'
            ? `start its worker: SNAPFLOW_HOST_ID=${hostId} npm run worker:host`
            : failure.code === 'DOCKER_UNAVAILABLE'
              ? 'start dockerd on that host, or fix its DOCKER_HOST'
              : failure.hint;
        return { name, status: 'fail', detail: `${failure.code}: ${failure.message}`, fix };
      }
    }),
  );
}

async function checkStorage(config: Config): Promise<Check> {
  const storage = config.storage;
  if (!storage) {
    return {
      name: 'storage',
      status: 'warn',
      detail: 'not configured: golden snapshot features are disabled',
      fix: 'set SNAPFLOW_STORAGE_URL, SNAPFLOW_STORAGE_USERNAME, SNAPFLOW_STORAGE_PASSWORD',
    };
  }
  try {
    const auth = Buffer.from(`${storage.username}:${storage.password}`).toString('base64');
    const response = await fetch(`${storage.url}/v2/`, { headers: { authorization: `Basic ${auth}` }, signal: AbortSignal.timeout(3000) });
    if (response.status === 200) return { name: 'storage', status: 'ok', detail: `${storage.url} (OCI registry, credentials accepted)` };
    if (response.status === 401)
      return {
        name: 'storage',
        status: 'fail',
        detail: `${storage.url} rejected the credentials`,
        fix: 'check SNAPFLOW_STORAGE_USERNAME / SNAPFLOW_STORAGE_PASSWORD',
      };
    return {
      name: 'storage',
      status: 'fail',
      detail: `${storage.url}/v2/ answered HTTP ${response.status}; not an OCI registry?`,
      fix: 'point SNAPFLOW_STORAGE_URL at the registry root',
    };
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    return {
      name: 'storage',
      status: 'fail',
      detail: `${storage.url} not reachable (${cause})`,
      fix: 'start the registry (npm start does), or fix SNAPFLOW_STORAGE_URL',
    };
  }
}

async function checkGithub(config: Config): Promise<Check> {
  if (!config.githubApp) {
    return {
      name: 'github app',
      status: 'warn',
      detail: 'not configured: private GHCR images cannot be used',
      fix: 'set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY',
    };
  }
  try {
    const app = createGithubApp(config.githubApp);
    const { data } = await app.octokit.request('GET /app', { request: { signal: AbortSignal.timeout(5000) } });
    return {
      name: 'github app',
      status: 'ok',
      detail: `app ${data?.slug ?? config.githubApp.appId} authenticated at ${config.githubApp.apiUrl}`,
    };
  } catch (err) {
    return {
      name: 'github app',
      status: 'fail',
      detail: `app ${config.githubApp.appId} at ${config.githubApp.apiUrl}: ${(err as Error).message}`,
      fix: 'check GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY and GITHUB_API_URL',
    };
  }
}

/** Where `npm start` serves the control and host workers' metrics, besides SNAPFLOW_METRICS_ADDRESS. */
export const DEV_METRICS_ADDRESSES = ['127.0.0.1:9464', '127.0.0.1:9465'];

/** The worker metrics endpoints that answer here; no line at all when none does (metrics are optional). */
async function checkMetrics(config: Config): Promise<Check[]> {
  const addresses = [...new Set([...(config.metricsAddress ? [config.metricsAddress] : []), ...DEV_METRICS_ADDRESSES])];
  const reachable = await Promise.all(
    addresses.map(async (address) => {
      const url = `http://${address}/metrics`;
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
      return response?.status === 200 && (await response.text()).includes('# TYPE') ? url : undefined;
    }),
  );
  const urls = reachable.filter((url): url is string => Boolean(url));
  return urls.length ? [{ name: 'metrics', status: 'ok', detail: urls.join(', ') }] : [];
}

export async function runDoctor(env: Record<string, string | undefined> = process.env): Promise<Check[]> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    const failure = describeFailure(err);
    return [{ name: 'config', status: 'fail', detail: failure.message, fix: failure.hint }];
  }
  const [pg, temporalChecks, storage, github, metrics] = await Promise.all([
    checkPostgres(config),
    checkTemporalAndWorkers(config),
    checkStorage(config),
    checkGithub(config),
    checkMetrics(config),
  ]);
  // Without an actor key the workers take every actor as named: fine on a dev machine, never in production.
  const actorKey: Check = config.actorKey
    ? { name: 'actor claims', status: 'ok', detail: 'SNAPFLOW_ACTOR_KEY set: workers refuse a request whose actor is not signed for' }
    : {
        name: 'actor claims',
        status: 'warn',
        detail: 'SNAPFLOW_ACTOR_KEY not set: any Temporal client can name any actor (dev only)',
        fix: 'set SNAPFLOW_ACTOR_KEY="$(openssl rand -base64 32)" for the workers, the API and trusted clients',
      };
  return [{ name: 'config', status: 'ok', detail: 'environment valid' }, pg, ...temporalChecks, storage, github, actorKey, ...metrics];
}
