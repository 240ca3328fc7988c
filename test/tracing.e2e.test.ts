// With OTEL_EXPORTER_OTLP_ENDPOINT pointed at a collector (here a stand-in on 127.0.0.1 that keeps what it is sent),
// one `sandbox run` is one trace: the client's command span is the root, the sandbox workflow's spans (control worker)
// hang under the client's calls, the job's activities (host worker) under the workflow's, all with one trace id.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SnapflowClient } from '../client';
import { activeTraceId } from '../lib/tracing';
import { freePort } from '../scripts/stack';
import { superviseWorker, type SupervisedWorker } from '../scripts/supervisor';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';
import { workerLogFile } from './support/workerLogs';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

let t: TestEnv;
let collector: Server;
let traced: SnapflowClient | undefined;
const spans: OtlpSpan[] = [];
const workers: SupervisedWorker[] = [];
const hostId = uniqueHostId('trace');

/** OTLP/HTTP JSON (what the exporter sends): resourceSpans → scopeSpans → spans, the service on the resource. */
function collect(body: string): void {
  const doc = JSON.parse(body) as {
    resourceSpans: Array<{
      resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
      scopeSpans: Array<{ spans: Array<Omit<OtlpSpan, 'service'>> }>;
    }>;
  };
  for (const rs of doc.resourceSpans) {
    const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
    for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, parentSpanId: s.parentSpanId || undefined, service });
  }
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  t = await createTestEnv();
  collector = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces' && String(req.headers['content-type']).includes('json')) collect(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
  for (const [name, script] of [
    ['control', 'workers/control.ts'],
    ['host', 'workers/host.ts'],
  ] as const) {
    const worker = superviseWorker({
      name,
      script,
      cwd: t.stack.dir,
      env: {
        ...process.env,
        ...t.env,
        SNAPFLOW_HOST_ID: hostId,
        SNAPFLOW_WORKFLOW_BUNDLE: t.stack.bundlePath,
        SNAPFLOW_METRICS_ADDRESS: String(await freePort()),
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      },
      logFile: workerLogFile(`tracing-${name}`),
    });
    workers.push(worker);
    worker.start();
  }
  traced = await SnapflowClient.connect(t.config, { env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint } });
  // The host is placeable once it announced itself (the control worker bundles its traced workflows first).
  await until('the host to register', async () => (await t.client.refreshHost(hostId).catch(() => undefined))?.hostId === hostId);
}, 240_000);

afterAll(async () => {
  await traced?.tracing?.shutdown();
  await traced?.close();
  for (const w of workers) await w.stop();
  await new Promise((resolve) => collector?.close(resolve));
  await t?.teardown();
});

test('one sandbox run is one trace across the client, the sandbox workflow and its activities', async () => {
  const client = traced!;
  expect(client.tracing).toBeDefined();
  const ws = 'ws-tracing';
  let root = '';
  const sandboxId = await client.traced('snapflow sandbox run', async () => {
    const { sandboxId } = await client.sandboxes.create({
      workspace: ws,
      class: 'container',
      size: 'small',
      runtime: 'codex',
      keepAlive: true,
    });
    const job = await client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'echo traced'] });
    expect(job).toMatchObject({ exitCode: 0 });
    root = activeTraceId() ?? '';
    await client.sandboxes.destroy(sandboxId);
    return sandboxId;
  });
  expect(sandboxId).toBeTruthy();
  expect(root).toMatch(/^[0-9a-f]{32}$/);
  await client.tracing!.flush();

  // The workers export in batches (about every second) and a parent span is exported when it ends, often in a later
  // batch than its children: wait until the job's activity span is in and every parent named has arrived. Should a
  // parent never come, the wait ends and the orphan check below names it.
  const parentsMissing = (mine: OtlpSpan[]): OtlpSpan[] => {
    const ids = new Set(mine.map((s) => s.spanId));
    return mine.filter((s) => s.parentSpanId && !ids.has(s.parentSpanId));
  };
  const complete = (): OtlpSpan[] | undefined => {
    const mine = spans.filter((s) => s.traceId === root);
    const services = new Set(mine.map((s) => s.service));
    const done = ['snapflow-client', 'snapflow-control', 'snapflow-host'].every((s) => services.has(s));
    return done && mine.some((s) => s.name === 'RunActivity:containerExec') && parentsMissing(mine).length === 0 ? mine : undefined;
  };
  const trace = await until('the whole trace from all three processes', complete, 60_000).catch(() =>
    spans.filter((s) => s.traceId === root),
  );

  // One root, the command; every other span's parent is in the same trace.
  const roots = trace.filter((s) => !s.parentSpanId);
  expect(roots.map((s) => [s.service, s.name])).toEqual([['snapflow-client', 'snapflow sandbox run']]);
  expect(parentsMissing(trace).map((s) => [s.service, s.name])).toEqual([]);

  // client → workflow → activity, by parent links.
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const ancestry = (span: OtlpSpan): OtlpSpan[] => {
    const chain: OtlpSpan[] = [];
    for (let s: OtlpSpan | undefined = span; s; s = s.parentSpanId ? byId.get(s.parentSpanId) : undefined) chain.push(s);
    return chain;
  };
  const exec = trace.find((s) => s.name === 'RunActivity:containerExec' && s.service === 'snapflow-host')!;
  const chain = ancestry(exec).map((s) => s.service);
  expect(chain[0]).toBe('snapflow-host');
  expect(chain).toContain('snapflow-control');
  expect(chain[chain.length - 1]).toBe('snapflow-client');
  expect(trace.some((s) => s.service === 'snapflow-control' && /^RunWorkflow:sandbox/.test(s.name))).toBe(true);
}, 300_000);
