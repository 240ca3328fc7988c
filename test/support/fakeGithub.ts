// A local stand-in for the GitHub REST API's App endpoints. GitHub itself cannot be reached offline, so
// this checks what GitHub checks: an RS256 JWT signed by the App's key, with GitHub's iat/exp limits,
// before it says anything about installations or mints a token.
import { createPublicKey, generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeInstallation {
  id: number;
  account: string;
  suspended: boolean;
  tokenTtlSeconds: number;
  /** Fixed for the fake's lifetime, so a registry's htpasswd can hold it. */
  token: string;
  /** Set by each mint; a token that was never minted opens nothing. */
  tokenExpiresAt?: number;
}

export interface FakeGithub {
  url: string;
  appId: number;
  privateKeyPem: string;
  installations: Map<number, FakeInstallation>;
  addInstallation(input: { id: number; account: string; suspended?: boolean; tokenTtlSeconds?: number }): FakeInstallation;
  suspend(id: number): void;
  tokenFor(id: number): string;
  requests: Array<{ method: string; path: string }>;
  /** Every token mint GitHub accepted, with the permissions asked for (undefined: all the installation has). */
  mints: Array<{ installationId: number; permissions?: Record<string, string> }>;
  close(): Promise<void>;
}

/** GitHub's own wording, so clients that match on it (e.g. @octokit/auth-app's clock-skew retry) behave as in production. */
const MESSAGES = {
  undecodable: 'A JSON web token could not be decoded',
  wrongIssuer: "'Issuer' claim ('iss') must be the App's id",
  iatFuture: "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
  expPast: "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
  expTooFar: "'Expiration time' claim ('exp') is too far in the future",
} as const;

/** What the test App's installations are granted; a token may ask for these or less, as GitHub enforces. */
const GRANTED: Record<string, 'read' | 'write'> = { packages: 'read', metadata: 'read' };
const LEVELS = ['read', 'write'];

/** GitHub's answer to a token request's `permissions`: undefined when acceptable, else its 422 message. */
function permissionsProblem(permissions: unknown): string | undefined {
  if (permissions === undefined) return undefined;
  if (!permissions || typeof permissions !== 'object' || Array.isArray(permissions))
    return "Invalid request.\n\nFor 'properties/permissions', it is not an object.";
  for (const [name, level] of Object.entries(permissions)) {
    if (typeof level !== 'string' || !LEVELS.includes(level))
      return `Invalid request.\n\n${JSON.stringify(level)} is not a permission level.`;
    const granted = GRANTED[name];
    if (!granted || (level === 'write' && granted === 'read')) return 'The permissions requested are not granted to this installation.';
  }
  return undefined;
}

const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const now = (): number => Math.floor(Date.now() / 1000);

function installationToken(): string {
  return 'ghs_' + Array.from(randomBytes(36), (b) => TOKEN_ALPHABET[b % TOKEN_ALPHABET.length]).join('');
}

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Returns the reason GitHub would give for refusing this Authorization header, or undefined if it is a good App JWT. */
export function checkAppJwt(authorization: string | undefined, publicKey: KeyObject, appId: number): string | undefined {
  const match = /^bearer\s+(\S+)$/i.exec(authorization ?? '');
  const parts = match?.[1]?.split('.');
  if (!parts || parts.length !== 3) return MESSAGES.undecodable;
  const [h, p, s] = parts as [string, string, string];
  const header = decodeJson(h);
  const payload = decodeJson(p);
  if (!header || !payload || header.alg !== 'RS256') return MESSAGES.undecodable;
  if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'))) return MESSAGES.undecodable;
  if (String(payload.iss) !== String(appId)) return MESSAGES.wrongIssuer;
  const { iat, exp } = payload;
  if (typeof iat !== 'number' || !Number.isInteger(iat) || iat > now() + 60) return MESSAGES.iatFuture;
  if (typeof exp !== 'number' || exp <= now()) return MESSAGES.expPast;
  if (exp - iat > 600) return MESSAGES.expTooFar; // GitHub's 10-minute cap
  return undefined;
}

export async function startFakeGithub(opts: { appId?: number } = {}): Promise<FakeGithub> {
  const appId = opts.appId ?? 4242;
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const verifyKey = createPublicKey(publicKey.export({ type: 'spki', format: 'pem' }));
  const installations = new Map<number, FakeInstallation>();
  const requests: FakeGithub['requests'] = [];
  const mints: FakeGithub['mints'] = [];

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string): void =>
    send(res, status, { message, documentation_url: 'https://docs.github.com/rest' });

  function route(req: IncomingMessage, res: ServerResponse, body: string): void {
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    const method = req.method ?? 'GET';
    requests.push({ method, path });

    if (path === '/installation/repositories' && method === 'GET') {
      const token = /^(?:token|bearer)\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const owner = [...installations.values()].find((i) => token !== undefined && i.token === token);
      const valid = owner && !owner.suspended && owner.tokenExpiresAt !== undefined && owner.tokenExpiresAt > Date.now();
      return valid ? send(res, 200, { total_count: 0, repositories: [] }) : error(res, 401, 'Bad credentials');
    }

    if (path === '/app' || path.startsWith('/app/')) {
      const refused = checkAppJwt(req.headers.authorization, verifyKey, appId);
      if (refused) return error(res, 401, refused);
      if (path === '/app' && method === 'GET') return send(res, 200, { id: appId, slug: 'snapflow-test', name: 'snapflow test app' });
      const m = /^\/app\/installations\/(\d+)(\/access_tokens)?$/.exec(path);
      const installation = m ? installations.get(Number(m[1])) : undefined;
      if (m && !installation) return error(res, 404, 'Not Found');
      if (installation && !m?.[2] && method === 'GET') {
        return send(res, 200, {
          id: installation.id,
          account: { login: installation.account },
          suspended_at: installation.suspended ? new Date().toISOString() : null,
        });
      }
      if (installation && m?.[2] && method === 'POST') {
        if (installation.suspended) return error(res, 403, 'This installation has been suspended');
        let request: { permissions?: Record<string, string> } = {};
        try {
          request = body ? (JSON.parse(body) as typeof request) : {};
        } catch {
          return error(res, 400, 'Problems parsing JSON');
        }
        const problem = permissionsProblem(request.permissions);
        if (problem) return error(res, 422, problem);
        mints.push({ installationId: installation.id, permissions: request.permissions });
        installation.tokenExpiresAt = Date.now() + installation.tokenTtlSeconds * 1000;
        return send(res, 201, {
          token: installation.token,
          expires_at: new Date(installation.tokenExpiresAt).toISOString(),
          permissions: request.permissions ?? GRANTED,
        });
      }
    }
    error(res, 404, 'Not Found');
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => route(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  const { port } = server.address() as AddressInfo;

  const get = (id: number): FakeInstallation => {
    const installation = installations.get(id);
    if (!installation) throw new Error(`fake GitHub has no installation ${id}`);
    return installation;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    appId,
    privateKeyPem,
    installations,
    requests,
    mints,
    addInstallation(input) {
      const installation = {
        id: input.id,
        account: input.account,
        suspended: input.suspended ?? false,
        tokenTtlSeconds: input.tokenTtlSeconds ?? 3600,
        token: installationToken(),
      };
      installations.set(input.id, installation);
      return installation;
    },
    suspend(id) {
      get(id).suspended = true;
    },
    tokenFor(id) {
      return get(id).token;
    },
    close() {
      server.closeAllConnections(); // fetch keeps connections alive; close() would wait for them
      return new Promise((done) => server.close(() => done()));
    },
  };
}
