// Serves the built console (console/build.ts) from the API's own server: `/` is the page, `/console/*` its
// assets. Files are read once, at registration, and answered from memory with an ETag; nothing is served from a
// path a request names. Without a build, `/` says how to make one.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifySchema } from 'fastify';

const TYPES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.js.map': 'application/json; charset=utf-8',
  'app.js.LEGAL.txt': 'text/plain; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/** Compiled: dist/console/server.js beside public/. From source (tsx): console/server.ts, the build in dist/. */
function builtDir(): string | undefined {
  return [join(__dirname, 'public'), join(__dirname, '..', 'dist', 'console', 'public')].find((dir) => existsSync(join(dir, 'index.html')));
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

function asset(dir: string, file: string, type: string): Asset | undefined {
  const path = join(dir, file);
  if (!existsSync(path)) return undefined;
  const body = readFileSync(path);
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/** The console's routes stay out of the API's OpenAPI document (@fastify/swagger reads `hide`). */
const HIDDEN = { hide: true } as FastifySchema;

export function registerConsole(app: FastifyInstance, options: { dir?: string } = {}): void {
  const dir = options.dir ?? builtDir();
  const page = dir ? asset(dir, 'index.html', 'text/html; charset=utf-8') : undefined;
  const assets = new Map<string, Asset>();
  for (const [file, type] of Object.entries(TYPES)) {
    const a = dir ? asset(dir, file, type) : undefined;
    if (a) assets.set(file, a);
  }

  // Revalidated on every load (no-cache + ETag): a rebuilt console is picked up at once, an unchanged one costs a 304.
  const send = (a: Asset, ifNoneMatch: string | undefined, reply: FastifyReply): FastifyReply => {
    reply.header('cache-control', 'no-cache').header('etag', a.etag);
    if (ifNoneMatch === a.etag) return reply.code(304).send();
    return reply.type(a.type).send(a.body);
  };

  app.get('/', { schema: HIDDEN }, async (request, reply) => {
    if (!page)
      return reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The console is not built: run `npm run build` (it writes dist/console/public), then start the API again.\n');
    return send(page, request.headers['if-none-match'], reply);
  });
  app.get<{ Params: { file: string } }>('/console/:file', { schema: HIDDEN }, async (request, reply) => {
    const a = assets.get(request.params.file);
    if (!a) return reply.callNotFound();
    return send(a, request.headers['if-none-match'], reply);
  });
}
