// `npm start`: the whole local stack and snapflow's workers (supervised: restarted on a crash), in one terminal.
// Ctrl-C stops all of it, by pid.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { sweepVmLeftovers } from '../activities/sandbox/vm/machines';
import { vmPlaces } from '../workers/host';
import { ensureDatabase, runMigrations } from '../db/migrate';
import { DEV_METRICS_ADDRESSES } from '../client/doctor';
import { describeTarget } from '../db/client';
import { dockerConnection, loadConfig, loadDotEnv, type Config } from '../lib/config';
import { describeFailure } from '../lib/errors';
import { bundleWorkflows } from './bundle-workflows';
import {
  ensureBaseImage,
  portOpen,
  projectRoot,
  startDockerd,
  startRegistry,
  startTemporal,
  stopDockerd,
  stopProcess,
  type ManagedProcess,
} from './stack';
import { superviseWorker, type SupervisedWorker } from './supervisor';
import { SOURCE_REGISTRY_PORT, ensureDemoAgentImage } from './demoImage';

const dataDir = join(projectRoot, '.data');
const envFile = join(projectRoot, '.env');
const pidFile = join(dataDir, 'dev-stack.json');

/** First start on a machine: write a .env for the dev stack (never committed; edit it freely). */
function writeDefaultEnv(): void {
  if (existsSync(envFile)) return;
  const lines = [
    '# Written by `npm start` for the local dev stack. Not committed (.gitignore). Edit freely.',
    'DATABASE_URL=postgres://postgres@127.0.0.1:5432/snapflow',
    'TEMPORAL_ADDRESS=127.0.0.1:7233',
    'TEMPORAL_NAMESPACE=default',
    'TEMPORAL_UI_URL=http://127.0.0.1:8233',
    'SNAPFLOW_HOST_ID=local',
    `DOCKER_HOST=unix://${join(dataDir, 'docker', 'docker.sock')}`,
    'SNAPFLOW_STORAGE_URL=http://127.0.0.1:5000',
    'SNAPFLOW_STORAGE_USERNAME=snapflow',
    `SNAPFLOW_STORAGE_PASSWORD=${randomBytes(18).toString('base64url')}`,
    // The workers believe an actor only with a claim signed with this key (the API and this machine's CLI hold it).
    `SNAPFLOW_ACTOR_KEY=${randomBytes(32).toString('base64')}`,
    // The HTTP API; with SNAPFLOW_TOKEN set as well, the CLI talks to it instead of Temporal and the database.
    'SNAPFLOW_API_URL=http://127.0.0.1:8787',
    '',
  ];
  writeFileSync(envFile, lines.join('\n'), { mode: 0o600 });
  console.log(`wrote ${envFile} with the dev stack's settings`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A previous dev stack that was killed hard leaves its pids here; stop those (ours, by record). */
async function stopLeftovers(): Promise<void> {
  if (!existsSync(pidFile)) return;
  const previous = JSON.parse(readFileSync(pidFile, 'utf8')) as { owner: number; processes: ManagedProcess[] };
  if (isAlive(previous.owner) && previous.owner !== process.pid) {
    throw new Error(
      `a dev stack is already running (pid ${previous.owner}); stop it with Ctrl-C in its terminal or kill ${previous.owner}`,
    );
  }
  for (const proc of previous.processes.reverse()) await stopStackProcess(proc);
  rmSync(pidFile, { force: true });
}

const dockerRoot = join(dataDir, 'docker');

/** dockerd with its sandbox containers, shims and mounts (nothing of it outlives the stack); the rest by pid. */
async function stopStackProcess(proc: ManagedProcess): Promise<void> {
  if (proc.name !== 'dockerd') return stopProcess(proc, 30_000);
  const { containers } = await stopDockerd(proc, dockerRoot);
  if (containers)
    console.log(`stopped ${containers} container(s) of the dev dockerd; \`npx snapflow sandbox start <id>\` resumes a sandbox`);
}

function assertPortFree(port: number, what: string): Promise<void> {
  return portOpen(port).then((open) => {
    if (open) throw new Error(`port ${port} (${what}) is already in use by another program; free it or change it in .env`);
  });
}

async function main(): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  writeDefaultEnv();
  loadDotEnv(envFile);
  const config: Config = loadConfig();
  await stopLeftovers();

  const temporalPort = Number(config.temporal.address.split(':').pop());
  const uiPort = Number(new URL(config.temporal.uiUrl).port || 8233);
  const storage = config.storage;
  const registryPort = storage ? Number(new URL(storage.url).port || 80) : undefined;
  // Each worker serves Prometheus metrics on its own loopback port (what `snapflow doctor` looks for).
  const [controlMetrics = '', hostMetrics = ''] = DEV_METRICS_ADDRESSES;
  const metricsAddresses = { control: controlMetrics, host: hostMetrics };
  await Promise.all([
    assertPortFree(Number(controlMetrics.split(':').pop()), 'control worker metrics'),
    assertPortFree(Number(hostMetrics.split(':').pop()), 'host worker metrics'),
    assertPortFree(temporalPort, 'Temporal'),
    assertPortFree(uiPort, 'Temporal UI'),
    registryPort ? assertPortFree(registryPort, 'snapshot storage') : undefined,
    assertPortFree(SOURCE_REGISTRY_PORT, 'source registry'),
  ]);

  const started: ManagedProcess[] = [];
  const workers: SupervisedWorker[] = [];
  const workerPids = (): ManagedProcess[] =>
    workers.flatMap((w) => (w.child?.pid ? [{ name: w.name, pid: w.child.pid, logFile: w.logFile }] : []));
  const record = (): void => writeFileSync(pidFile, JSON.stringify({ owner: process.pid, processes: [...started, ...workerPids()] }));
  let stopping = false;
  const stopAll = async (code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      console.log('\nstopping: workers, registry, dockerd, Temporal …');
      // Workers first (they drain in-flight tasks against the stack), then the stack in reverse start order.
      await Promise.all(workers.map((w) => w.stop({ graceMs: 30_000 })));
      // vm sandboxes' QEMU processes are daemons of their own: stopped like the containers (their sessions stay).
      const vms = await sweepVmLeftovers(
        { docker: new Docker(dockerConnection(config.host.dockerHost)), ...vmPlaces(config.host.id) },
        async () => false,
      ).catch(() => ({ removed: [] }));
      if (vms.removed.length)
        console.log(`stopped ${vms.removed.length} vm(s) of the dev host; \`npx snapflow sandbox start <id>\` resumes a sandbox`);
      for (const proc of [...started].reverse()) await stopStackProcess(proc);
      rmSync(pidFile, { force: true });
      console.log('stopped everything this stack started.');
    }
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    const track = <T extends ManagedProcess>(p: T): T => (started.push(p), record(), p);
    const [temporal, dockerd] = await Promise.all([
      // With payload encryption on, the UI decrypts through `npm run codec-server` (the keys stay in that process).
      startTemporal({
        dataDir: join(dataDir, 'temporal'),
        port: temporalPort,
        uiPort,
        namespace: config.temporal.namespace,
        uiCodecEndpoint: config.payloadKey ? `http://127.0.0.1:${config.codecPort}` : undefined,
      }).then(track),
      startDockerd({ root: dockerRoot }).then(track),
      storage && registryPort
        ? startRegistry({
            dir: join(dataDir, 'registry'),
            port: registryPort,
            username: storage.username,
            password: storage.password,
          }).then(track)
        : undefined,
      // Images come from a registry other than snapshot storage: a public one on loopback, for the tour's image.
      startRegistry({ dir: join(dataDir, 'sources'), port: SOURCE_REGISTRY_PORT }).then(track),
      ensureDatabase(config.databaseUrl).then(() => runMigrations(config.databaseUrl)),
      bundleWorkflows(),
    ]);
    if (dockerd.dockerHost !== config.host.dockerHost) {
      console.warn(
        `note: DOCKER_HOST in .env (${config.host.dockerHost}) is not the dev dockerd (${dockerd.dockerHost}); the host worker uses DOCKER_HOST`,
      );
    }
    const docker = new Docker(dockerConnection(config.host.dockerHost));
    await ensureBaseImage(docker);
    const demoImage = await ensureDemoAgentImage(docker, `127.0.0.1:${SOURCE_REGISTRY_PORT}`);

    const logDir = join(dataDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    // Supervised: a worker that crashes is started again with backoff; only Ctrl-C stops the stack.
    for (const [name, script, metrics] of [
      ['control', 'workers/control.ts', metricsAddresses.control],
      ['host', 'workers/host.ts', metricsAddresses.host],
      ['api', 'api/main.ts', ''],
    ] as const) {
      const worker = superviseWorker({
        name,
        script,
        cwd: projectRoot,
        env: {
          // `snapflow storage gc` runs the registry's garbage-collect on the control worker: the dev registry's config.
          ...(storage ? { SNAPFLOW_REGISTRY_CONFIG: join(dataDir, 'registry', 'config.yml') } : {}),
          ...process.env,
          SNAPFLOW_METRICS_ADDRESS: metrics,
        },
        logFile: join(logDir, `${name}.log`),
        onLine: (line) => console.log(`[${name}] ${line}`),
        onStart: () => record(),
        onRestart: ({ code, signal, delayMs, restarts }) =>
          console.error(
            `✗ the ${name} worker exited (${signal ?? `code ${code}`}); restarting it in ${delayMs / 1000} s (restart ${restarts}; log ${join(logDir, `${name}.log`)})`,
          ),
      });
      workers.push(worker);
      worker.start();
    }
    record();

    const db = describeTarget(config.databaseUrl);
    console.log(
      [
        '',
        'snapflow dev stack is up',
        `  Temporal       ${temporal.address}  (history in ${join(dataDir, 'temporal', 'temporal.db')})`,
        `  Temporal UI    ${temporal.uiUrl}`,
        `  Postgres       ${db.host}:${db.port}/${db.database}  (migrations applied)`,
        `  Docker host    ${config.host.id} → ${config.host.dockerHost}`,
        `  Storage        ${storage ? `${storage.url}  (user ${storage.username}, password in .env)` : 'not configured: golden features disabled'}`,
        `  Sources        http://127.0.0.1:${SOURCE_REGISTRY_PORT}  (public registry images come from; holds ${demoImage})`,
        `  Metrics        http://${metricsAddresses.control}/metrics (control), http://${metricsAddresses.host}/metrics (host)`,
        `  Workers        control (pid ${workers[0]?.child?.pid}), host ${config.host.id} (pid ${workers[1]?.child?.pid}), restarted on a crash; logs in ${logDir}`,
        `  API            http://${config.api.address}  (docs http://${config.api.address}/docs; a first token: npx snapflow token create --operator)`,
        '',
        'Next, in another shell:',
        '  npx snapflow doctor',
        `  npx snapflow host self-test ${config.host.id}`,
        '  npx snapflow sandbox create --workspace demo --size small --runtime codex --keep-alive',
        '  npx snapflow golden config set --workspace demo --target small:codex && npx snapflow golden build --workspace demo --wait',
        '',
        'Ctrl-C stops everything started here, sandbox containers included.',
      ].join('\n'),
    );
  } catch (err) {
    const failure = describeFailure(err);
    console.error(`✗ npm start failed: ${failure.message}${failure.hint ? `\n  fix: ${failure.hint}` : ''}`);
    await stopAll(1);
  }
}

void main();
