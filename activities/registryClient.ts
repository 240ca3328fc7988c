// A small client for the Distribution / OCI registry HTTP API (plain fetch), used on host and control
// workers to resolve tags to digests, delete manifests and list tags. It speaks both auth styles seen in
// practice: Basic (htpasswd registries like snapshot storage) and the Bearer token flow (ghcr.io, Docker Hub).
import { createHash } from 'node:crypto';
import { SnapflowError } from '../lib/errors';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryTarget {
  /** host[:port] as written in image references, e.g. `ghcr.io` or `127.0.0.1:5000`. */
  registry: string;
  repository: string;
  credentials?: Credentials;
  /** Plain http for a non-loopback host, like Docker's `insecure-registries`. */
  insecure?: boolean;
}

const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

/** Loopback registries are plain http, as Docker treats them; everything else https. */
export function registryBaseUrl(registry: string, insecure = false): string {
  const host = registry === 'docker.io' || registry === 'index.docker.io' ? 'registry-1.docker.io' : registry;
  const hostname = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const loopback = hostname === 'localhost' || hostname === '::1' || /^127(\.\d{1,3}){3}$/.test(hostname);
  return `${loopback || insecure ? 'http' : 'https'}://${host}`;
}

function parseChallenge(header: string | null): Record<string, string> | undefined {
  if (!header || !/^bearer\s/i.test(header)) return undefined;
  const params: Record<string, string> = {};
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) params[(m[1] as string).toLowerCase()] = m[2] as string;
  return params.realm ? params : undefined;
}

const basic = (c: Credentials): string => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;

/** The registry's own error codes (MANIFEST_UNKNOWN, DENIED, …), for messages and classification. */
async function errorCodes(res: Response): Promise<string[]> {
  const body = (await res.json().catch(() => undefined)) as { errors?: Array<{ code?: string }> } | undefined;
  return (body?.errors ?? []).map((e) => e.code ?? '').filter(Boolean);
}

/**
 * One conversation with a registry: Basic credentials up front (htpasswd registries take them directly),
 * and on a Bearer challenge the token flow against the realm, reusing that token for the rest of the call.
 */
export class Session {
  private readonly base: string;
  private authorization?: string;

  constructor(private readonly target: RegistryTarget) {
    this.base = registryBaseUrl(target.registry, target.insecure);
    this.authorization = target.credentials && basic(target.credentials);
  }

  /** `path` may be a full URL (an upload Location); a body is sent as is (a Blob streams from its file). */
  async send(method: string, path: string, headers: Record<string, string> = {}, body?: Blob | Buffer): Promise<Response> {
    const url = /^https?:\/\//.test(path) ? path : `${this.base}${path}`;
    let res = await this.fetch(url, method, headers, body);
    const challenge = res.status === 401 ? parseChallenge(res.headers.get('www-authenticate')) : undefined;
    if (challenge) {
      await res.body?.cancel();
      this.authorization = `Bearer ${await this.bearerToken(challenge)}`;
      res = await this.fetch(url, method, headers, body);
    }
    if (res.status >= 500) {
      await res.body?.cancel();
      throw new Error(`registry ${this.target.registry} answered ${res.status} to ${method} ${path}; it may be restarting or overloaded`);
    }
    return res;
  }

  /** 401/403 once credentials (or their absence) have had their say. */
  async authFailed(res: Response): Promise<SnapflowError> {
    await res.body?.cancel();
    const { status } = res;
    const { registry, repository, credentials } = this.target;
    return new SnapflowError({
      code: 'REGISTRY_AUTH_FAILED',
      message: credentials
        ? `registry ${registry} refused the credentials of ${credentials.username} for ${repository} (HTTP ${status})`
        : `registry ${registry} requires credentials for ${repository} (HTTP ${status})`,
      hint: 'check the registry username and password (or the GitHub connection for GHCR images)',
    });
  }

  private async fetch(url: string, method: string, headers: Record<string, string>, body?: Blob | Buffer): Promise<Response> {
    try {
      return await fetch(url, {
        method,
        headers: { ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        redirect: 'follow',
        body,
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(
        `registry ${this.target.registry} is unreachable at ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      );
    }
  }

  private async bearerToken(challenge: Record<string, string>): Promise<string> {
    const url = new URL(challenge.realm as string);
    if (challenge.service) url.searchParams.set('service', challenge.service);
    if (challenge.workspace) url.searchParams.set('workspace', challenge.workspace);
    const { credentials } = this.target;
    const res = await fetch(url, { headers: credentials ? { authorization: basic(credentials) } : {} }).catch((err: Error) => {
      throw new Error(`token service of registry ${this.target.registry} (${url.origin}) is unreachable: ${err.message}`);
    });
    if (res.status === 401 || res.status === 403) throw await this.authFailed(res);
    if (!res.ok) throw new Error(`token service of registry ${this.target.registry} (${url.origin}) answered ${res.status}`);
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new Error(`token service of registry ${this.target.registry} (${url.origin}) returned no token`);
    return token;
  }
}

const manifestPath = (repository: string, reference: string): string => `/v2/${repository}/manifests/${reference}`;
const describe = (repository: string, reference: string): string => `${repository}${reference.includes(':') ? '@' : ':'}${reference}`;

function notFound(target: RegistryTarget, reference: string, codes: string[] = []): SnapflowError {
  return new SnapflowError({
    code: 'IMAGE_NOT_FOUND',
    message: `image ${describe(target.repository, reference)} not found in ${target.registry}${codes.length ? ` (${codes.join(', ')})` : ''}`,
    hint: 'check the repository and tag, and that the image was pushed',
  });
}

/**
 * Tag (or digest) → content digest and media type. HEAD first: it costs no body and does not count as a
 * pull on Docker Hub; GET (hashing the exact bytes) when a registry leaves out Docker-Content-Digest.
 */
export async function resolveDigest(input: RegistryTarget & { reference: string }): Promise<{ digest: string; mediaType: string }> {
  const session = new Session(input);
  const path = manifestPath(input.repository, input.reference);
  const head = await session.send('HEAD', path, { accept: MANIFEST_TYPES });
  if (head.status === 404) throw notFound(input, input.reference);
  if (head.status === 401 || head.status === 403) throw await session.authFailed(head);
  const headDigest = head.headers.get('docker-content-digest');
  if (head.ok && headDigest) return { digest: headDigest, mediaType: head.headers.get('content-type')?.split(';')[0] ?? '' };

  const res = await session.send('GET', path, { accept: MANIFEST_TYPES });
  if (res.status === 404) throw notFound(input, input.reference, await errorCodes(res));
  if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
  if (!res.ok)
    throw new Error(
      `registry ${input.registry} answered ${res.status} for ${describe(input.repository, input.reference)}: ${(await errorCodes(res)).join(', ')}`,
    );
  const body = Buffer.from(await res.arrayBuffer());
  const digest = res.headers.get('docker-content-digest') ?? `sha256:${createHash('sha256').update(body).digest('hex')}`;
  let declared: string | undefined;
  try {
    declared = (JSON.parse(body.toString('utf8')) as { mediaType?: string }).mediaType;
  } catch {
    declared = undefined; // not JSON: the Content-Type header is all there is
  }
  return { digest, mediaType: res.headers.get('content-type')?.split(';')[0] ?? declared ?? '' };
}

/** Removes a manifest by digest. Already gone counts as done, so a retried delete workflow converges. */
export async function deleteManifest(input: RegistryTarget & { digest: string; credentials: Credentials }): Promise<void> {
  const session = new Session(input);
  const res = await session.send('DELETE', manifestPath(input.repository, input.digest));
  if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
  const codes = await errorCodes(res);
  if (res.status === 202 || res.status === 200 || res.status === 404) return;
  if (res.status === 405) {
    throw new SnapflowError({
      code: 'STORAGE_UNAVAILABLE',
      message: `registry ${input.registry} does not allow deletes (${describe(input.repository, input.digest)})`,
      hint: 'enable deletes in the registry configuration (Distribution: storage.delete.enabled: true)',
    });
  }
  throw new Error(
    `registry ${input.registry} answered ${res.status} to deleting ${describe(input.repository, input.digest)}: ${codes.join(', ')}`,
  );
}

/**
 * What a stored manifest names that the registry no longer has: the manifest itself, its config and layers, and for
 * an index its child manifests (and theirs). Empty when everything pulls.
 */
export async function missingBlobs(input: RegistryTarget & { digest: string }): Promise<string[]> {
  const session = new Session(input);
  const missing: string[] = [];
  const visit = async (digest: string, depth: number): Promise<void> => {
    const res = await session.send('GET', manifestPath(input.repository, digest), { accept: MANIFEST_TYPES });
    if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
    if (res.status === 404) return (await res.body?.cancel(), void missing.push(digest));
    if (!res.ok) throw new Error(`registry ${input.registry} answered ${res.status} for ${describe(input.repository, digest)}`);
    const body = (await res.json()) as {
      config?: { digest: string };
      layers?: Array<{ digest: string }>;
      manifests?: Array<{ digest: string }>;
    };
    for (const child of depth < 2 ? (body.manifests ?? []) : []) await visit(child.digest, depth + 1);
    for (const blob of [...(body.config ? [body.config] : []), ...(body.layers ?? [])]) {
      const head = await session.send('HEAD', `/v2/${input.repository}/blobs/${blob.digest}`);
      await head.body?.cancel();
      if (head.status === 404) missing.push(blob.digest);
      else if (!head.ok) throw new Error(`registry ${input.registry} answered ${head.status} for blob ${blob.digest}`);
    }
  };
  await visit(input.digest, 0);
  return missing;
}

/** All tags of a repository, following `Link: rel="next"` pages; an unknown repository has none. */
export async function listTags(input: RegistryTarget): Promise<string[]> {
  const session = new Session(input);
  const tags: string[] = [];
  let path: string | undefined = `/v2/${input.repository}/tags/list`;
  for (let page = 0; path && page < 1000; page++) {
    const res: Response = await session.send('GET', path);
    if (res.status === 404) return (await res.body?.cancel(), tags);
    if (res.status === 401 || res.status === 403) throw await session.authFailed(res);
    if (!res.ok) throw new Error(`registry ${input.registry} answered ${res.status} listing tags of ${input.repository}`);
    tags.push(...(((await res.json()) as { tags?: string[] | null }).tags ?? []));
    const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.headers.get('link') ?? '')?.[1];
    path = next && new URL(next, 'http://registry').pathname + new URL(next, 'http://registry').search;
  }
  return tags;
}
