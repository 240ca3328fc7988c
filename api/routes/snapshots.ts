// Image snapshots and the workspace's GitHub connection, over the client's own calls.
import type { FastifyInstance } from 'fastify';
import { SNAPSHOT_KINDS, SNAPSHOT_STATUSES } from '../../lib/vocabulary';
import { callerOf, requireScope } from '../auth';
import { fail } from '../problems';
import { anyObject, ok, workspaceParam } from '../schemas';
import type { ApiDeps } from '../server';

interface WorkspaceParams {
  workspace: string;
}

const snapshotParams = {
  type: 'object',
  properties: { workspace: workspaceParam.properties.workspace, name: { type: 'string', minLength: 1, maxLength: 63 } },
  required: ['workspace', 'name'],
  additionalProperties: false,
} as const;

const listQuery = {
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
    cursor: { type: 'string', maxLength: 200 },
    status: { type: 'string', enum: [...SNAPSHOT_STATUSES] },
    kind: { type: 'string', enum: [...SNAPSHOT_KINDS] },
    runtime: { type: 'string', maxLength: 16 },
    size: { type: 'string', maxLength: 16 },
  },
  additionalProperties: false,
} as const;

const createBody = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'unique, versioned name, e.g. agent-base-v3' },
    image: { type: 'string', description: 'image reference, e.g. ghcr.io/org/image:v1' },
    entrypoint: { type: 'string', description: 'default /app/start.sh' },
    runtime: { type: 'string', description: 'codex | pi' },
    size: { type: 'string', description: 'small | medium | large' },
    replace: { type: 'boolean', description: 'a changed spec creates the next version and moves defaults, pins and agents to it' },
    allowFloatingTag: { type: 'boolean' },
  },
  required: ['name', 'image', 'runtime', 'size'],
  additionalProperties: false,
} as const;

/** An opaque cursor: the id of the last item of the page before. */
const encodeCursor = (id: string): string => Buffer.from(id, 'utf8').toString('base64url');
const decodeCursor = (cursor: string): string => Buffer.from(cursor, 'base64url').toString('utf8');

export function registerSnapshotRoutes(app: FastifyInstance, _deps: ApiDeps): void {
  app.get<{
    Params: WorkspaceParams;
    Querystring: { limit: number; cursor?: string; status?: string; kind?: string; runtime?: string; size?: string };
  }>(
    '/workspaces/:workspace/snapshots',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'List snapshots, newest first, a page at a time',
        params: workspaceParam,
        querystring: listQuery,
        response: ok({
          type: 'object',
          properties: { items: { type: 'array', items: anyObject }, nextCursor: { type: ['string', 'null'] } },
        }),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const { workspace } = request.params;
      requireScope(caller, workspace, 'snapshot.read');
      const { limit, cursor, ...filters } = request.query;
      const all = await caller.client.snapshots.list({ workspace, ...filters });
      let start = 0;
      if (cursor) {
        const after = all.findIndex((s) => s.id === decodeCursor(cursor));
        if (after < 0) throw fail('VALIDATION_FAILED', 'the cursor is not one this list gave', 'cursor', 'start again without a cursor');
        start = after + 1;
      }
      const items = all.slice(start, start + limit);
      const more = start + limit < all.length;
      return { items, nextCursor: more && items.length ? encodeCursor(items[items.length - 1]!.id) : null };
    },
  );

  app.post<{
    Params: WorkspaceParams;
    Body: {
      name: string;
      image: string;
      entrypoint?: string;
      runtime: string;
      size: string;
      replace?: boolean;
      allowFloatingTag?: boolean;
    };
  }>(
    '/workspaces/:workspace/snapshots',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Create an image snapshot; it builds in the background (202, status pending)',
        params: workspaceParam,
        body: createBody,
        response: ok(anyObject, 202),
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      const { workspace } = request.params;
      requireScope(caller, workspace, request.body.replace ? 'snapshot.replace' : 'snapshot.create');
      const created = await caller.client.snapshots.create({ workspace, ...request.body });
      // The client answers once the run has written the row: a GET …/snapshots/:name right after shows it pending.
      return reply
        .code(created.reused && created.status === 'active' ? 200 : 202)
        .send({ ...created, uiLink: caller.client.uiLink(created.workflowId) });
    },
  );

  app.get<{ Params: WorkspaceParams & { name: string } }>(
    '/workspaces/:workspace/snapshots/:name',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'A snapshot with its events and its run in the Temporal UI',
        params: snapshotParams,
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return caller.client.snapshots.get(request.params);
    },
  );

  app.delete<{ Params: WorkspaceParams & { name: string } }>(
    '/workspaces/:workspace/snapshots/:name',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Delete a snapshot (refused while a default, pin, agent or sandbox uses it)',
        params: snapshotParams,
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.delete');
      return caller.client.snapshots.delete(request.params);
    },
  );

  app.post<{ Params: WorkspaceParams; Body: { unusedFor: string; dryRun?: boolean } }>(
    '/workspaces/:workspace/snapshots/prune',
    {
      schema: {
        tags: ['snapshots'],
        summary: 'Snapshots unused for a while: listed (dryRun, the default) or deleted',
        params: workspaceParam,
        body: {
          type: 'object',
          properties: {
            unusedFor: { type: 'string', pattern: '^[0-9]{1,5}d$', description: 'e.g. 14d' },
            dryRun: { type: 'boolean', default: true },
          },
          required: ['unusedFor'],
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const { workspace } = request.params;
      const yes = request.body.dryRun === false;
      requireScope(caller, workspace, yes ? 'snapshot.prune' : 'snapshot.read');
      return caller.client.snapshots.prune({ workspace, unusedForDays: Number(request.body.unusedFor.slice(0, -1)), yes });
    },
  );

  app.get<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/github',
    {
      schema: {
        tags: ['github'],
        summary: 'The stored GitHub connection (connected, expired or missing)',
        params: workspaceParam,
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      const state = await caller.client.githubStatus(request.params);
      return state ?? { workspace: request.params.workspace, status: 'missing' };
    },
  );

  const githubCall = (path: string, summary: string, withInstallation: boolean) =>
    app.post<{ Params: WorkspaceParams; Body: { installationId?: number } | undefined }>(
      `/workspaces/:workspace/github/${path}`,
      {
        schema: {
          tags: ['github'],
          summary,
          params: workspaceParam,
          ...(withInstallation
            ? {
                body: {
                  type: 'object',
                  properties: { installationId: { type: 'integer', minimum: 1 } },
                  required: ['installationId'],
                  additionalProperties: false,
                },
              }
            : {}),
          response: ok(),
        },
      },
      async (request) => {
        const caller = callerOf(request);
        requireScope(caller, request.params.workspace, 'github.connect');
        return caller.client.validateGithub({
          workspace: request.params.workspace,
          installationId: withInstallation ? request.body?.installationId : undefined,
        });
      },
    );
  githubCall('connect', 'Connect a GitHub App installation (asks GitHub, records the verdict)', true);
  githubCall('validate', 'Ask GitHub whether the stored installation still works', false);
  githubCall('reconnect', 'Validate the stored installation again after fixing it on GitHub', false);
}
