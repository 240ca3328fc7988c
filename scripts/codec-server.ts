// `npm run codec-server`: the Temporal UI's remote codec, so an operator's browser shows encrypted payloads
// in the clear. POST /encode and /decode in Temporal's codec-server JSON; listens on 127.0.0.1 only, answers
// only the configured UI origin, and holds the keys in this process (the UI never sees them).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { EncryptionCodec } from '../lib/codec';
import { ConfigError, loadConfig, loadDotEnv } from '../lib/config';
import { describeFailure } from '../lib/errors';
import { exitWithError } from '../workers/options';

/** A payload as the UI sends it: every metadata value and the data in base64. */
interface JsonPayload {
  metadata?: Record<string, string>;
  data?: string;
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface CodecServerOptions {
  codec: PayloadCodec;
  /** 0 picks a free port (tests). */
  port: number;
  /** The Temporal UI's origin (scheme://host:port), the only browser origin allowed to call. */
  uiOrigin: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function fromJson(body: unknown): Payload[] {
  const payloads = (body as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads)) throw new HttpError(400, 'body must be { "payloads": [...] }');
  return payloads.map((p: JsonPayload) => ({
    metadata: Object.fromEntries(Object.entries(p?.metadata ?? {}).map(([k, v]) => [k, Buffer.from(String(v), 'base64')])),
    data: Buffer.from(p?.data ?? '', 'base64'),
  }));
}

function toJson(payloads: Payload[]): { payloads: JsonPayload[] } {
  return {
    payloads: payloads.map((p) => ({
      metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')])),
      data: Buffer.from(p.data ?? []).toString('base64'),
    })),
  };
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
}

export async function startCodecServer(opts: CodecServerOptions): Promise<{ url: string; close(): Promise<void> }> {
  const uiOrigin = new URL(opts.uiOrigin).origin;
  let allowedHosts: string[] = [];
  const cors = {
    'access-control-allow-origin': uiOrigin,
    'access-control-allow-methods': 'POST, OPTIONS',
    'access-control-allow-headers': 'content-type, x-namespace',
    'access-control-allow-credentials': 'true',
    'access-control-max-age': '600',
    vary: 'origin',
  };
  const send = (res: ServerResponse, status: number, body?: unknown): void => {
    res.writeHead(status, { ...cors, ...(body === undefined ? {} : { 'content-type': 'application/json' }) });
    res.end(body === undefined ? undefined : JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Only this machine's names (no DNS rebinding) and, from a browser, only the UI's origin.
    if (!allowedHosts.includes(req.headers.host ?? '')) throw new HttpError(403, 'unexpected Host header');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== uiOrigin) throw new HttpError(403, `origin ${origin} is not the Temporal UI (${uiOrigin})`);
    const path = new URL(req.url ?? '/', 'http://codec').pathname;
    if (path !== '/encode' && path !== '/decode') throw new HttpError(404, 'only POST /encode and POST /decode');
    if (req.method === 'OPTIONS') return send(res, 204);
    if (req.method !== 'POST') throw new HttpError(405, 'only POST /encode and POST /decode');
    const payloads = fromJson(await readBody(req));
    const result = path === '/encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
    send(res, 200, toJson(result));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof HttpError) return send(res, err.status, { error: err.message });
      const failure = describeFailure(err); // e.g. an unknown key id: say which, never any key material
      send(res, 400, { error: `${failure.code}: ${failure.message}`, hint: failure.hint });
    });
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(opts.port, '127.0.0.1', done);
  });
  const { port } = server.address() as AddressInfo;
  allowedHosts = [`127.0.0.1:${port}`, `localhost:${port}`];
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))),
  };
}

async function main(): Promise<void> {
  loadDotEnv();
  const config = loadConfig();
  if (!config.payloadKey) throw new ConfigError('SNAPFLOW_PAYLOAD_KEY', 'is required for the codec server', '"$(openssl rand -base64 32)"');
  const server = await startCodecServer({
    codec: new EncryptionCodec(config.payloadKey),
    port: config.codecPort,
    uiOrigin: config.temporal.uiUrl,
  });
  const keys = [config.payloadKey.id, ...config.payloadKey.oldKeys.map((k) => k.id)].join(', ');
  console.log(`codec server at ${server.url} for the Temporal UI at ${config.temporal.uiUrl} (keys ${keys})`);
  console.log(`start the UI with --ui-codec-endpoint ${server.url}, or set it in the UI under the data encoder settings`);
  const stop = (): void => void server.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (require.main === module) main().catch((err) => exitWithError('codec server', err));
