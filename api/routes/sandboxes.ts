import type { FastifyInstance } from 'fastify';
import type { ApiDeps } from '../server';

export function registerSandboxRoutes(_app: FastifyInstance, _deps: ApiDeps): void {}
