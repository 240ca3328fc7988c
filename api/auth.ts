// Who calls: the bearer token, checked against the catalog's hashed tokens. Failed attempts are rate-limited per
// client address; a token narrowed to a workspace and role is held to them here, before any client call, and the
// workflows then decide on the user's real role (the API acts as the token's user, never as a name in a body).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authenticateToken, type TokenIdentity } from '../catalog/tokens';
import type { SnapflowClient } from '../client';
import type { Db } from '../db/client';
import { ACTIONS, type Action } from '../lib/authz';
import { fail, sendProblem } from './problems';

export interface Caller extends TokenIdentity {
  /** The token's user is one of SNAPFLOW_OPERATORS and the token is not narrowed to a workspace. */
  isOperator: boolean;
  /** The direct client acting as this user: every workflow it starts carries a claim for them. */
  client: SnapflowClient;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/** The caller, set by the auth hook on every /v1 route. */
export function callerOf(request: FastifyRequest): Caller {
  if (!request.caller) throw fail('UNAUTHENTICATED', 'no caller', 'authorization');
  return request.caller;
}

/**
 * A token narrowed to a workspace acts there only, and with at most its role: refused here as PERMISSION_DENIED,
 * like the workflows refuse a role the user lacks.
 */
export function requireScope(caller: Caller, workspace: string, action: Action): void {
  if (caller.isOperator || !caller.workspace) return;
  if (workspace !== caller.workspace)
    throw fail(
      'PERMISSION_DENIED',
      `this token acts in workspace ${caller.workspace} only, not ${workspace.slice(0, 64)}`,
      'workspace',
      'use a token made for that workspace (snapflow token create --workspace …)',
    );
  if (caller.role === 'member' && ACTIONS[action].role === 'admin')
    throw fail(
      'PERMISSION_DENIED',
      `${action} needs the admin role; this token acts as a member of ${caller.workspace}`,
      'actor',
      'use a token made with --role admin by an admin',
    );
}

const BEARER = /^Bearer ([A-Za-z0-9_-]{1,200})$/;

export function registerAuth(app: FastifyInstance, deps: { db: Db; client: SnapflowClient; operators: readonly string[] }): void {
  // Ten failed attempts a minute per address; successful requests are not counted.
  const failures = app.createRateLimit({ max: 10, timeWindow: 60_000 });
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/v1/')) return;
    // A CORS preflight never carries credentials (browsers send none): it is neither a caller nor a failed login.
    if (request.method === 'OPTIONS') return;
    const before = await failures(request, { increment: false });
    // `isExceeded` would let an eleventh failure through (it counts past the max): none is left after ten.
    if (!before.isAllowed && before.remaining === 0)
      return sendProblem(reply.header('retry-after', String(before.ttlInSeconds)), {
        code: 'RATE_LIMITED',
        message: 'too many failed authentication attempts from this address',
        hint: `try again in ${before.ttlInSeconds} s with a valid token`,
      });
    const header = request.headers.authorization;
    const token = header ? BEARER.exec(header)?.[1] : undefined;
    const identity = token ? await authenticateToken(deps.db, token) : null;
    if (!identity) {
      await failures(request);
      return sendProblem(reply.header('www-authenticate', 'Bearer realm="snapflow"'), {
        code: 'UNAUTHENTICATED',
        field: 'authorization',
        message: header ? 'the token is unknown, revoked or expired' : 'no token: send Authorization: Bearer <token>',
        hint: 'make one with `snapflow token create --user <you>`, or log in: snapflow login --url … --token …',
      });
    }
    request.caller = {
      ...identity,
      isOperator: deps.operators.includes(identity.user) && !identity.workspace,
      client: deps.client.as(identity.user),
    };
  });
}
