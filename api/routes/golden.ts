// Golden snapshots: the build config and its daily schedule, build now, builds, defaults with history, set-default
// and rollback, over the client's golden calls.
import type { FastifyInstance } from 'fastify';
import type { GoldenConfigInput } from '../../lib/goldenConfig';
import type { Runtime } from '../../lib/presets';
import { callerOf, requireScope } from '../auth';
import { anyObject, ok, workspaceParam } from '../schemas';
import type { ApiDeps } from '../server';

interface WorkspaceParams {
  workspace: string;
}

const target = {
  oneOf: [
    { type: 'string', description: 'size:runtime, e.g. small:codex (or size:runtime:vm)', maxLength: 64 },
    {
      type: 'object',
      properties: { size: { type: 'string' }, runtime: { type: 'string' }, base: { type: 'string' }, machine: { type: 'boolean' } },
      required: ['size', 'runtime'],
      additionalProperties: false,
    },
  ],
} as const;

const configBody = {
  type: 'object',
  properties: {
    repos: { type: 'array', items: { type: 'string', maxLength: 2048 }, maxItems: 50 },
    embedSkills: { type: 'boolean' },
    skillsPath: { type: 'string', maxLength: 4096 },
    prebuildDeps: { type: 'boolean' },
    depsFallbackCommand: { type: 'string', maxLength: 4096 },
    targets: { type: 'array', items: target, minItems: 1, maxItems: 20 },
    base: { type: 'string', maxLength: 63 },
    schedule: { type: 'string', maxLength: 64, description: 'five-field cron or a time of day (03:00)' },
    timeZone: { type: 'string', maxLength: 64 },
    enabled: { type: 'boolean' },
  },
  required: ['targets'],
  additionalProperties: false,
} as const;

const list = { type: 'object', properties: { items: { type: 'array', items: anyObject } } } as const;

export function registerGoldenRoutes(app: FastifyInstance, _deps: ApiDeps): void {
  app.get<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/golden/config',
    { schema: { tags: ['golden'], summary: 'The golden build config', params: workspaceParam, response: ok() } },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return caller.client.golden.getConfig(request.params.workspace);
    },
  );

  app.put<{ Params: WorkspaceParams; Body: Omit<GoldenConfigInput, 'workspace'> }>(
    '/workspaces/:workspace/golden/config',
    {
      schema: {
        tags: ['golden'],
        summary: 'Set the build config; creates, updates or pauses its daily Schedule (admins, paid plan)',
        params: workspaceParam,
        body: configBody,
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'golden.config');
      return caller.client.golden.setConfig({ ...request.body, workspace: request.params.workspace });
    },
  );

  app.post<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/golden/builds',
    {
      schema: {
        tags: ['golden'],
        summary: 'Build now (202): the build runs in the background',
        params: workspaceParam,
        response: ok(anyObject, 202),
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'golden.build');
      const started = await caller.client.golden.buildNow(request.params);
      return reply.code(202).send({ ...started, uiLink: caller.client.uiLink(started.workflowId) });
    },
  );

  app.get<{ Params: WorkspaceParams; Querystring: { limit: number } }>(
    '/workspaces/:workspace/golden/builds',
    {
      schema: {
        tags: ['golden'],
        summary: 'Recent builds, newest first, with their outcome and run link',
        params: workspaceParam,
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 } },
          additionalProperties: false,
        },
        response: ok(list),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      const builds = await caller.client.golden.recentBuilds(request.params.workspace, request.query.limit);
      return {
        items: builds.map((b) => ({ ...b, uiLink: b.workflowId ? caller.client.uiLink(b.workflowId, b.runId ?? undefined) : undefined })),
      };
    },
  );

  app.get<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/golden/schedule',
    {
      schema: {
        tags: ['golden'],
        summary: 'The daily Schedule: paused or not, next and recent runs',
        params: workspaceParam,
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return (
        (await caller.client.golden.scheduleState(request.params.workspace)) ?? {
          scheduleId: null,
          paused: true,
          nextRuns: [],
          recentRuns: [],
        }
      );
    },
  );

  app.get<{ Params: WorkspaceParams }>(
    '/workspaces/:workspace/golden/defaults',
    {
      schema: {
        tags: ['golden'],
        summary: 'The default per size/profile, each with its history',
        params: workspaceParam,
        response: ok(list),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return { items: await caller.client.golden.defaults(request.params.workspace) };
    },
  );

  app.post<{ Params: WorkspaceParams; Body: { name: string; reason?: string; expectedVersion?: number } }>(
    '/workspaces/:workspace/golden/defaults',
    {
      schema: {
        tags: ['golden'],
        summary: 'Make a golden snapshot the default for its size/profile (compare-and-set with expectedVersion)',
        params: workspaceParam,
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', maxLength: 63 },
            reason: { type: 'string', maxLength: 500 },
            expectedVersion: { type: 'integer', minimum: 0 },
          },
          required: ['name'],
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'golden.set-default');
      return caller.client.golden.setDefault({ ...request.body, workspace: request.params.workspace });
    },
  );

  app.post<{ Params: WorkspaceParams; Body: { size: string; runtime: string; base?: string } }>(
    '/workspaces/:workspace/golden/rollback',
    {
      schema: {
        tags: ['golden'],
        summary: 'Set the default back to the one the current default replaced',
        params: workspaceParam,
        body: {
          type: 'object',
          properties: {
            size: { type: 'string', maxLength: 16 },
            runtime: { type: 'string', maxLength: 16 },
            base: { type: 'string', maxLength: 63 },
          },
          required: ['size', 'runtime'],
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'golden.set-default');
      return caller.client.golden.rollback({
        ...request.body,
        runtime: request.body.runtime as Runtime,
        workspace: request.params.workspace,
      });
    },
  );
}
