// Who am I, workspaces and their members, and API tokens.
import type { FastifyInstance } from 'fastify';
import { PLANS, ROLES } from '../../lib/vocabulary';
import { callerOf, requireScope } from '../auth';
import { fail } from '../problems';
import { anyObject, ok, workspaceParam } from '../schemas';
import type { ApiDeps } from '../server';

const user = { type: 'string', minLength: 1, maxLength: 128 } as const;

export function registerWorkspaceRoutes(app: FastifyInstance, _deps: ApiDeps): void {
  app.get(
    '/me',
    {
      schema: {
        tags: ['identity'],
        summary: 'Who the token says you are, and your role in each workspace',
        response: ok({
          type: 'object',
          properties: {
            user: { type: 'string' },
            operator: { type: 'boolean' },
            workspaces: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, role: { type: 'string' } } } },
          },
        }),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      return caller.client.tokens.me({ workspace: caller.workspace, role: caller.role });
    },
  );

  app.get(
    '/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Workspaces you belong to (operators: all)',
        response: ok({ type: 'object', properties: { items: { type: 'array', items: anyObject } } }),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      const all = await caller.client.workspaces.list();
      return { items: caller.workspace ? all.filter((w) => w.id === caller.workspace) : all };
    },
  );

  app.post<{ Body: { id: string; admin: string; plan?: string } }>(
    '/workspaces',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Create a workspace with its first admin (operators)',
        body: {
          type: 'object',
          properties: { id: { type: 'string', maxLength: 63 }, admin: user, plan: { type: 'string', enum: [...PLANS] } },
          required: ['id', 'admin'],
          additionalProperties: false,
        },
        response: ok(anyObject, 201),
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      if (caller.workspace)
        throw fail('PERMISSION_DENIED', 'a token narrowed to a workspace cannot create workspaces', 'workspace', 'use an operator token');
      return reply.code(201).send(await caller.client.workspaces.create(request.body));
    },
  );

  app.get<{ Params: { workspace: string } }>(
    '/workspaces/:workspace/members',
    {
      schema: {
        tags: ['workspaces'],
        summary: "The workspace's members and their roles",
        params: workspaceParam,
        response: ok({ type: 'object', properties: { items: { type: 'array', items: anyObject } } }),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'snapshot.read');
      return { items: await caller.client.workspaces.members(request.params.workspace) };
    },
  );

  app.post<{ Params: { workspace: string }; Body: { user: string; role?: string } }>(
    '/workspaces/:workspace/members',
    {
      schema: {
        tags: ['workspaces'],
        summary: "Add a member or change a member's role (admins)",
        params: workspaceParam,
        body: {
          type: 'object',
          properties: { user, role: { type: 'string', enum: [...ROLES] } },
          required: ['user'],
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'workspace.manage');
      return caller.client.workspaces.addMember({ workspace: request.params.workspace, ...request.body });
    },
  );

  app.delete<{ Params: { workspace: string; user: string } }>(
    '/workspaces/:workspace/members/:user',
    {
      schema: {
        tags: ['workspaces'],
        summary: 'Remove a member (admins)',
        params: {
          type: 'object',
          properties: { workspace: workspaceParam.properties.workspace, user },
          required: ['workspace', 'user'],
          additionalProperties: false,
        },
        response: ok(),
      },
    },
    async (request) => {
      const caller = callerOf(request);
      requireScope(caller, request.params.workspace, 'workspace.manage');
      await caller.client.workspaces.removeMember(request.params);
      return { workspace: request.params.workspace, user: request.params.user, removed: true };
    },
  );

  app.get(
    '/tokens',
    {
      schema: {
        tags: ['identity'],
        summary: 'Your tokens (operators: all), never the secrets',
        response: ok({ type: 'object', properties: { items: { type: 'array', items: anyObject } } }),
      },
    },
    async (request) => ({ items: await callerOf(request).client.tokens.list() }),
  );

  app.post<{ Body: { user: string; workspace?: string; role?: string; expires?: string } }>(
    '/tokens',
    {
      schema: {
        tags: ['identity'],
        summary: 'Make a token (shown once): operators for anyone, others for themselves',
        body: {
          type: 'object',
          properties: {
            user,
            workspace: { type: 'string', maxLength: 63 },
            role: { type: 'string', enum: [...ROLES] },
            expires: { type: 'string', maxLength: 16 },
          },
          required: ['user'],
          additionalProperties: false,
        },
        response: ok(anyObject, 201),
      },
    },
    async (request, reply) => {
      const caller = callerOf(request);
      // A narrowed token makes only tokens at least as narrow.
      if (caller.workspace && (request.body.workspace !== caller.workspace || (caller.role === 'member' && request.body.role !== 'member')))
        throw fail(
          'PERMISSION_DENIED',
          `this token may only make tokens for ${caller.workspace}${caller.role === 'member' ? ' as member' : ''}`,
          'workspace',
          'pass the same workspace and role',
        );
      return reply.code(201).send(await caller.client.tokens.create(request.body));
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/tokens/:id',
    {
      schema: {
        tags: ['identity'],
        summary: 'Revoke a token, at once and for good',
        params: { type: 'object', properties: { id: { type: 'string', maxLength: 64 } }, required: ['id'], additionalProperties: false },
        response: ok(),
      },
    },
    async (request) => callerOf(request).client.tokens.revoke(request.params.id),
  );
}
