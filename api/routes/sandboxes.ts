// Sandboxes and agents. A job's output is streamed as server-sent events while it runs (`event: stdout|stderr`, data
// the bytes in base64, so any output survives the text protocol), then `event: result` with the job's result, or
// `event: error` with a problem body.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { sandboxScope } from '../../catalog/sandboxes';
import { describeFailure } from '../../lib/errors';
import type { Action } from '../../lib/authz';
import { callerOf, requireScope, type Caller } from '../auth';
import { fail, problemOf } from '../problems';
import { anyObject, ok, sandboxParam, workspaceParam } from '../schemas';
import type { ApiDeps } from '../server';

const uuidRegex = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface WorkspaceParams {
  workspace: string;
}
interface SandboxParams {
  id: string;
}

const createBody = {
  type: 'object',
  properties: {
    class: { type: 'string', enum: ['vm', 'container'] },
    size: { type: 'string', maxLength: 16 },
    runtime: { type: 'string', maxLength: 16 },
    keepAlive: { type: 'boolean' },
    issue: { type: 'string', maxLength: 128 },
    idleTimeout: { type: ['string', 'integer'], description: 'e.g. 15m' },
    maxLifetime: { type: ['string', 'integer'], description: 'e.g. 24h' },
    agent: { type: 'string', maxLength: 63 },
    snapshot: { type: 'string', maxLength: 63 },
  },
  required: ['class'],
  additionalProperties: false,
} as const;

const jobBody = {
  type: 'object',
  properties: {
    command: { type: 'array', items: { type: 'string', maxLength: 65536 }, minItems: 1, maxItems: 1000 },
    env: { type: 'object', additionalProperties: { type: 'string', maxLength: 65536 }, maxProperties: 200 },
    workdir: { type: 'string', maxLength: 4096 },
    timeout: { type: ['string', 'integer'], description: 'e.g. 10m (default 30m)' },
  },
  required: ['command'],
  additionalProperties: false,
} as const;

const list = { type: 'object', properties: { items: { type: 'array', items: anyObject } } } as const;

export function registerSandboxRoutes(app: FastifyInstance, deps: ApiDeps): void {
  /** A sandbox id is checked against the token's workspace before anything is asked of it. */
  const onSandbox = async (caller: Caller, id: string, action: Action): Promise<void> => {
    if (caller.isOperator || !caller.workspace) return;
    const workspace = uuidRegex.test(id) ? await sandboxScope(deps.db, id) : undefined;
    if (!workspace) throw fail('NOT_FOUND', `no sandbox ${id.slice(0, 64)}`, 'sandbox', 'list sandboxes with `snapflow sandbox list`');
    requireScope(caller, workspace, action);
  };

  app.get<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/sandboxes',
    { schema: { tags: ['sandboxes'], summary: "The workspace's sandboxes", params: workspaceParam, response: ok(list) } },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return { items: await caller.client.sandboxes.list(request.params.workspace) };
    },
  );

  app.post<{ Params: WorkspaceParams; Body: Record<string, unknown> & { class: string } }>(
    '/workspaces/:workspace/sandboxes',
    {
      schema: {
        tags: ['sandboxes'],
        summary: 'Create a sandbox; it starts by the restore order (201 once it left provisioning)',
        params: workspaceParam,
        body: createBody,
        response: ok(anyObject, 201),
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'sandbox.create');
      const created = await caller.client.sandboxes.create({ ...request.body, workspace: request.params.workspace } as never);
      return reply.code(201).send({ ...created, uiLink: caller.client.uiLink(created.workflowId) });
    },
  );

  app.get<{ Params: SandboxParams }>(
    '/sandboxes/:id',
    { schema: { tags: ['sandboxes'], summary: "A sandbox's state, host, jobs and sessions", params: sandboxParam, response: ok() } },
    async (request) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'snapshot.read');
      return caller.client.sandboxes.status(request.params.id);
    },
  );

  app.get<{ Params: SandboxParams }>(
    '/sandboxes/:id/explain',
    {
      schema: {
        tags: ['sandboxes'],
        summary: 'Where the next start would come from, and why every earlier step was skipped (read-only)',
        params: sandboxParam,
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'snapshot.read');
      return caller.client.sandboxes.explain(request.params.id);
    },
  );

  app.post<{
    Params: SandboxParams;
    Body: { command: string[]; env?: Record<string, string>; workdir?: string; timeout?: string | number };
  }>(
    '/sandboxes/:id/jobs',
    {
      schema: {
        tags: ['sandboxes'],
        summary: 'Run a job; output streamed as server-sent events (stdout, stderr: base64 bytes; then result)',
        params: sandboxParam,
        body: jobBody,
        response: { 200: { type: 'string', description: 'text/event-stream' } },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'sandbox.job');
      streamJob(reply, caller, request.params.id, request.body);
      return reply;
    },
  );

  app.get<{ Params: SandboxParams; Querystring: { job?: number; follow?: boolean; since?: string } }>(
    '/sandboxes/:id/logs',
    {
      schema: {
        tags: ['sandboxes'],
        summary: "A job's whole log (the last job's without `job`) as server-sent events: stdout, stderr, note (base64 bytes), then end",
        params: sandboxParam,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            job: { type: 'integer', minimum: 1, maximum: 2_147_483_647 },
            follow: { type: 'boolean' },
            since: { type: 'string', maxLength: 64 },
          },
        },
        response: { 200: { type: 'string', description: 'text/event-stream' } },
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'snapshot.read');
      const chunks = caller.client.sandboxes.logs(request.params.id, { ...request.query, signal: closedSignal(reply) });
      // The first read answers a missing log or a bad `since` as a problem, before any event is sent.
      const first = await chunks.next();
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      const send = (event: string, data: string): void => {
        if (!res.writableEnded) res.write(`event: ${event}\ndata: ${data}\n\n`);
      };
      void (async () => {
        try {
          if (!first.done) send(first.value.stream, first.value.data.toString('base64'));
          if (!first.done) for await (const c of chunks) send(c.stream, c.data.toString('base64'));
          send('end', '{}');
        } catch (err) {
          send('error', JSON.stringify(problemOf(describeFailure(err))));
        } finally {
          res.end();
        }
      })();
      return reply;
    },
  );

  app.post<{ Params: SandboxParams; Body: { name: string; setDefault?: boolean } }>(
    '/sandboxes/:id/promote',
    {
      schema: {
        tags: ['sandboxes'],
        summary: 'Promote an idle sandbox to a golden snapshot (admins, paid plan)',
        params: sandboxParam,
        body: {
          type: 'object',
          properties: { name: { type: 'string', maxLength: 63 }, setDefault: { type: 'boolean' } },
          required: ['name'],
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'sandbox.promote');
      return caller.client.sandboxes.promote(request.params.id, request.body);
    },
  );

  app.post<{ Params: SandboxParams; Body: { name?: string } }>(
    '/sandboxes/:id/fork',
    {
      schema: {
        tags: ['sandboxes'],
        summary: 'Fork a sandbox: a new one from its latest session, or from its live state saved on the spot while it runs',
        params: sandboxParam,
        body: {
          type: 'object',
          properties: { name: { type: 'string', maxLength: 36, description: "the fork's id (a UUID); default: a fresh one" } },
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'sandbox.fork');
      return caller.client.sandboxes.fork({ sandbox: request.params.id, name: request.body?.name });
    },
  );

  app.post<{ Params: SandboxParams }>(
    '/sandboxes/:id/resume',
    {
      schema: { tags: ['sandboxes'], summary: 'Start a stopped sandbox again by the restore order', params: sandboxParam, response: ok() },
    },
    async (request) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'sandbox.resume');
      return caller.client.sandboxes.resume(request.params.id);
    },
  );

  app.delete<{ Params: SandboxParams }>(
    '/sandboxes/:id',
    { schema: { tags: ['sandboxes'], summary: 'Destroy a sandbox', params: sandboxParam, response: ok() } },
    async (request) => {
      const caller = callerOf(request);
      await onSandbox(caller, request.params.id, 'sandbox.destroy');
      return caller.client.sandboxes.destroy(request.params.id);
    },
  );

  app.get<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/agents',
    {
      schema: {
        tags: ['agents'],
        summary: "The workspace's agents and the snapshot each runs on",
        params: workspaceParam,
        response: ok(list),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return { items: await caller.client.agents.list({ workspace: request.params.workspace }) };
    },
  );

  app.post<{ Params: WorkspaceParams; Body: { name: string; snapshot: string; healthCommand?: string[] } }>(
    '/workspaces/:workspace/agents',
    {
      schema: {
        tags: ['agents'],
        summary: 'Create an agent on an image snapshot (admins)',
        params: workspaceParam,
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', maxLength: 63 },
            snapshot: { type: 'string', maxLength: 63 },
            healthCommand: { type: 'array', items: { type: 'string', maxLength: 4096 }, maxItems: 100 },
          },
          required: ['name', 'snapshot'],
          additionalProperties: false,
        },
        response: ok(anyObject, 201),
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'agent.manage');
      return reply.code(201).send(await caller.client.agents.create({ ...request.body, workspace: request.params.workspace }));
    },
  );
}

/** Aborts when the client goes away: a followed log stops being read. */
function closedSignal(reply: FastifyReply): AbortSignal {
  const closed = new AbortController();
  reply.raw.once('close', () => closed.abort());
  return closed.signal;
}

/** The job's output as server-sent events; the connection closes after `result` (or `error`). */
function streamJob(
  reply: FastifyReply,
  caller: Caller,
  id: string,
  job: { command: string[]; env?: Record<string, string>; workdir?: string; timeout?: string | number },
): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    connection: 'keep-alive',
  });
  const send = (event: string, data: string): void => {
    if (!res.writableEnded) res.write(`event: ${event}\ndata: ${data}\n\n`);
  };
  const b64 = (data: string | Uint8Array): string =>
    (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)).toString('base64');
  caller.client.sandboxes
    .runJob(id, job, {
      onOutput: (chunk) => send(chunk.stream, b64(chunk.data)),
      onResumed: (from) => send('resumed', JSON.stringify(from)),
    })
    .then(
      (result) => send('result', JSON.stringify(result)),
      (err: unknown) => send('error', JSON.stringify(problemOf(describeFailure(err)))),
    )
    .finally(() => res.end());
}
