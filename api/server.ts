// The HTTP API: the same calls as the typed client, under /v1, for the user a bearer token names. Every body,
// query and parameter is validated by its JSON schema; the schemas make the OpenAPI document (/openapi.json) and
// the browsable reference (/docs). Secure headers (helmet), CORS closed unless SNAPFLOW_API_CORS_ORIGINS names
// origins, failed authentication rate-limited.
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyInstance } from 'fastify';
import type { SnapflowClient } from '../client';
import type { Db } from '../db/client';
import type { Config } from '../lib/config';
import { registerConsole } from '../console/server';
import { registerAuth } from './auth';
import { errorHandler, problemSchema } from './problems';
import { registerGoldenRoutes } from './routes/golden';
import { registerSandboxRoutes } from './routes/sandboxes';
import { registerSnapshotRoutes } from './routes/snapshots';
import { registerWorkspaceRoutes } from './routes/workspaces';

export interface ApiDeps {
  config: Config;
  /** The trusted direct client (it holds SNAPFLOW_ACTOR_KEY); each request uses it `as()` the token's user. */
  client: SnapflowClient;
  db: Db;
  /** Fastify's logger; off in tests. */
  logger?: boolean;
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: 1024 * 1024,
    // Unknown body fields are refused (not silently dropped), so a typo'd option is never ignored.
    ajv: { customOptions: { removeAdditional: false, allErrors: false, allowUnionTypes: true } },
  });
  app.addSchema(problemSchema);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .type('application/problem+json')
      .send({
        type: 'https://snapflow.dev/problems/not-found',
        title: 'NOT_FOUND',
        status: 404,
        code: 'NOT_FOUND',
        message: `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 200)}`,
        field: null,
        hint: 'see the routes at /docs',
      }),
  );

  await app.register(helmet, { global: true });
  await app.register(cors, { origin: deps.config.api.corsOrigins.length ? deps.config.api.corsOrigins : false, credentials: false });
  await app.register(rateLimit, { global: false });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'snapflow API', version: '1', description: 'Sandbox snapshots on Temporal: the same calls as the snapflow client.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  registerConsole(app);

  registerAuth(app, { db: deps.db, client: deps.client, operators: deps.config.operators });
  await app.register(
    async (v1) => {
      registerWorkspaceRoutes(v1, deps);
      registerSnapshotRoutes(v1, deps);
      registerGoldenRoutes(v1, deps);
      registerSandboxRoutes(v1, deps);
    },
    { prefix: '/v1' },
  );
  return app;
}
