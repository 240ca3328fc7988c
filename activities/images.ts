// Image snapshot work on one host: pull the source image, check its entrypoint, store it in snapshot storage.
// Registry credentials are obtained here, inside the activity, and never returned to the workflow.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type Docker from 'dockerode';
import type { StorageConfig } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { CONTAINER_LABEL } from '../lib/ids';
import { localAddresses, resolveAll } from '../lib/hostResolver';
import { parseImageRef } from '../lib/imageRef';
import { refuseStorageSource } from '../lib/registryAddress';
import { boundary, fail } from './boundary';
import { tenantHostConfig } from './confinement';
import { withHeartbeat } from './heartbeats';
import { followProgress } from './progress';
import { BOOT_LOG_CAP_BYTES, watchEntrypoint } from './bootCheck';
import { JobLog } from './jobLog';
import type { LogRef, LogSink } from '../catalog/logs';
import { resolveDigest } from './registryClient';

export interface RegistryCredentials {
  username: string;
  password: string;
}

/**
 * Credentials for a source registry: a GitHub installation token for the configured GHCR host only (the host worker
 * decides from the image's own registry), or none. Storage's credentials are never offered for a source.
 */
export type CredentialsFor = (input: { registry: string; installationId?: number }) => Promise<RegistryCredentials | undefined>;

export interface ImageDeps {
  docker: Docker;
  hostId: string;
  storage?: StorageConfig;
  credentialsFor: CredentialsFor;
  /** Where a snapshot build's pull and push output is kept. */
  logs?: LogSink;
}

/** One line per layer event of a Docker pull or push (progress bars left out: they are not what explains a failure). */
function progressLine(event: unknown): string | undefined {
  const e = event as { status?: string; id?: string; progressDetail?: { current?: number }; error?: string; aux?: { Digest?: string } };
  if (e.error) return `error: ${e.error}`;
  if (!e.status || e.progressDetail?.current !== undefined) return undefined;
  return `${e.id ? `${e.id}: ` : ''}${e.status}`;
}

/** Streams a Docker progress stream's lines into `log` as they come. */
function logProgress(stream: NodeJS.ReadableStream, log: JobLog): void {
  let rest = '';
  stream.on('data', (data: Buffer) => {
    const lines = (rest + data.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const raw of lines) {
      let line: string | undefined;
      try {
        line = progressLine(JSON.parse(raw));
      } catch {
        line = undefined;
      }
      if (line) log.push('stdout', Buffer.from(`${line.slice(0, 2000)}\n`));
    }
  });
}

export interface PullImage {
  /** registry/repository@sha256:… — always by digest, so what is checked is what is stored. */
  ref: string;
  registry: string;
  installationId?: number;
  /** The build log's segment this step writes. */
  log?: LogRef;
}

export interface EntrypointCheck {
  image: string;
  entrypoint: string;
  /** The snapshot's size: the check's container is confined like a sandbox of it. */
  size?: string;
}

export interface BootCheck {
  image: string;
  entrypoint: string;
  /** The snapshot's size: the entrypoint runs confined like a sandbox of it. */
  size?: string;
  /** Seconds the entrypoint must stay up (a sandbox's own readiness window). */
  windowSeconds: number;
  /** The build log's segment the entrypoint's output goes into. */
  log?: LogRef;
}

export interface StoreImage {
  source: string;
  /** Repository path inside snapshot storage, e.g. `snapflow/ws-1/agent-base-v3`. */
  repository: string;
  tag: string;
  log?: LogRef;
}

/**
 * A registry that refuses a freshly minted installation token says this installation cannot read that image, not
 * that the connection is gone (GitHub itself refusing to mint is what marks it expired): the snapshot fails, typed.
 */
function refusedToken(registry: string, what: string): never {
  fail(
    'REGISTRY_AUTH_FAILED',
    `${registry} refused the GitHub installation token for ${what}`,
    "check that the image exists and that the GitHub App's installation may read this package",
  );
}

/** Maps what the engine says about a pull or push to our codes; unknown problems stay retryable. */
function classifyRegistryError(message: string, what: string, registry: string, ghcr: boolean): never {
  if (/manifest unknown|not found|does not exist|name unknown/i.test(message))
    fail('IMAGE_NOT_FOUND', `${what}: not found in ${registry}`, 'check the image reference and tag');
  if (/unauthorized|denied|authentication required|no basic auth|forbidden/i.test(message)) {
    if (ghcr) refusedToken(registry, what);
    fail('REGISTRY_AUTH_FAILED', `${registry} refused the credentials for ${what}`, 'check the registry credentials');
  }
  throw ApplicationFailure.create({
    type: 'STORAGE_UNAVAILABLE',
    message: `${what} via ${registry} failed: ${message}`,
    nonRetryable: false,
  });
}

/** Docker reports a file's stat in a header of HEAD /containers/{id}/archive: no shell needed in the image. */
async function statInContainer(container: Docker.Container, path: string): Promise<{ mode: number; linkTarget: string } | undefined> {
  try {
    const res = (await container.infoArchive({ path })) as unknown as { headers: Record<string, string>; resume?: () => void };
    res.resume?.();
    const header = res.headers['x-docker-container-path-stat'];
    return header ? (JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { mode: number; linkTarget: string }) : undefined;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

const S_IFDIR = 0x80000000; // Go's os.ModeDir, as Docker encodes it

export function createImageActivities(deps: ImageDeps) {
  const { docker } = deps;
  /**
   * Snapshot storage holds every workspace's images: it is never a source, whoever asks and however it is spelled
   * (the registry's names are resolved here, on the host whose engine would pull).
   */
  const notStorage = async (registry: string, image: string): Promise<void> => {
    if (!deps.storage) return;
    await boundary(() =>
      refuseStorageSource({ image, registry, storage: deps.storage!, resolve: resolveAll, localAddresses: localAddresses() }),
    );
  };

  return {
    /** Tag → digest with the registry's own API, so the rest of the run works on exactly one image. */
    async resolveImage(input: {
      registry: string;
      repository: string;
      reference: string;
      installationId?: number;
    }): Promise<{ digest: string }> {
      const pinned = input.reference.includes(':') ? `@${input.reference}` : `:${input.reference}`; // sha256:… is a digest
      await notStorage(input.registry, `${input.registry}/${input.repository}${pinned}`);
      const credentials = await deps.credentialsFor({ registry: input.registry, installationId: input.installationId });
      return boundary(async () => {
        try {
          const { digest } = await resolveDigest({
            registry: input.registry,
            repository: input.repository,
            reference: input.reference,
            credentials,
          });
          return { digest };
        } catch (err) {
          // Connection problems are not SnapflowErrors: retried by the activity policy.
          if (err instanceof SnapflowError && err.code === 'REGISTRY_AUTH_FAILED' && credentials?.username === 'x-access-token')
            refusedToken(input.registry, input.repository);
          throw err;
        }
      });
    },

    /** Pulls the pinned image; its size sets the upload's timeouts. */
    async pullImage(input: PullImage): Promise<{ imageId: string; bytes: number }> {
      // The registry the engine will contact is the reference's own, whatever `registry` says.
      const registry = await boundary(async () => parseImageRef(input.ref).registry);
      await notStorage(registry, input.ref);
      const credentials = await deps.credentialsFor({ registry, installationId: input.installationId });
      const ctx = Context.current();
      let layers = 0;
      const log = new JobLog(input.log && deps.logs, input.log);
      try {
        const stream = await docker.pull(input.ref, credentials ? { authconfig: { ...credentials, serveraddress: registry } } : {});
        stream.on('data', () => ctx.heartbeat({ step: 'pull', layers: ++layers }));
        logProgress(stream, log);
        await followProgress(docker, stream);
      } catch (err) {
        await log.flush();
        classifyRegistryError((err as Error).message, `pull of ${input.ref}`, registry, credentials?.username === 'x-access-token');
      }
      await log.flush();
      const image = await docker.getImage(input.ref).inspect();
      return { imageId: image.Id, bytes: image.Size };
    },

    /** The entrypoint exists in the image, is a regular file (or a link to one) and is executable. */
    async verifyEntrypoint(input: EntrypointCheck): Promise<{ mode: string }> {
      const container = await docker.createContainer({
        Image: input.image,
        Entrypoint: [input.entrypoint],
        Labels: { [CONTAINER_LABEL]: 'temp' },
        HostConfig: tenantHostConfig(input.size), // never started, but made from the tenant's image like any sandbox
      });
      try {
        let path = input.entrypoint;
        for (let hops = 0; hops < 8; hops++) {
          const stat = await statInContainer(container, path);
          if (!stat)
            fail(
              'ENTRYPOINT_NOT_FOUND',
              `entrypoint ${input.entrypoint} does not exist in ${input.image}`,
              'set --entrypoint to a path that exists in the image (default /app/start.sh)',
            );
          if (stat.linkTarget) {
            path = stat.linkTarget.startsWith('/') ? stat.linkTarget : `${path.slice(0, path.lastIndexOf('/') + 1)}${stat.linkTarget}`;
            continue;
          }
          if (stat.mode & S_IFDIR)
            fail(
              'ENTRYPOINT_NOT_FOUND',
              `entrypoint ${input.entrypoint} is a directory in ${input.image}`,
              'point --entrypoint at an executable file',
            );
          if ((stat.mode & 0o111) === 0)
            fail(
              'ENTRYPOINT_NOT_FOUND',
              `entrypoint ${input.entrypoint} exists in ${input.image} but is not executable`,
              'chmod +x it in the image and push a new tag',
            );
          return { mode: (stat.mode & 0o7777).toString(8) };
        }
        fail('ENTRYPOINT_NOT_FOUND', `entrypoint ${input.entrypoint} is a chain of more than 8 links`);
      } finally {
        await container.remove({ force: true }).catch(() => undefined);
      }
    },

    /**
     * Starts the entrypoint as a sandbox would and watches it for `windowSeconds`, its output into the build log: up
     * then (or exited 0, like the built-in base's) passes; a non-zero exit fails ENTRYPOINT_EXITED with its own last
     * lines. Read-only: the container is removed whatever happens, so a retry simply checks again.
     */
    async bootCheck(input: BootCheck): Promise<{ exitCode?: number; ranMs: number }> {
      const log = new JobLog(input.log && deps.logs, input.log, { capBytes: BOOT_LOG_CAP_BYTES });
      const windowMs = input.windowSeconds * 1000;
      const watched = await withHeartbeat('boot check', () =>
        watchEntrypoint(docker, { image: input.image, entrypoint: input.entrypoint, size: input.size, windowMs, log }),
      ).catch(async (err: unknown) => {
        await log.endSegment();
        const status = (err as { statusCode?: number }).statusCode;
        // The engine could not run it at all (no such file, no interpreter, a bad format): the image's fault, typed.
        // Any other engine failure is not the image's, and is retried.
        const notRunnable = /exec format error|no such file or directory|executable file not found|permission denied/i;
        if (status === 400 || (status === 500 && notRunnable.test((err as Error).message)))
          fail(
            'ENTRYPOINT_EXITED',
            `entrypoint ${input.entrypoint} could not start in ${input.image}: ${(err as Error).message}`,
            'fix the entrypoint (its interpreter line, its format) in the image and push a new tag',
          );
        throw err;
      });
      const seconds = (watched.ranMs / 1000).toFixed(1);
      // The verdict after the output (past a cut: after its true end).
      await log.endSegment();
      if (watched.exitCode === undefined) log.note(`${input.entrypoint} still running after ${seconds} s: up\n`);
      else log.note(`${input.entrypoint} exited ${watched.exitCode} after ${seconds} s${watched.killed ? ` (${watched.killed})` : ''}\n`);
      await log.flush();
      if (watched.exitCode !== undefined && watched.exitCode !== 0)
        fail(
          'ENTRYPOINT_EXITED',
          `entrypoint ${input.entrypoint} exited ${watched.exitCode} ${seconds} s after it started${watched.killed ? ` (${watched.killed})` : ''}` +
            (watched.lastOutput ? `; its last output: ${watched.lastOutput.split('\n').join(' | ')}` : ' without output'),
          'an entrypoint must keep running (it is the sandbox agent process); fix it in the image and push a new tag',
        );
      return { ...(watched.exitCode !== undefined ? { exitCode: watched.exitCode } : {}), ranMs: watched.ranMs };
    },

    /** Tags the source into snapshot storage and pushes; the local tag is dropped afterwards. */
    async storeImage(input: StoreImage): Promise<{ storedRef: string; digest: string }> {
      const storage = deps.storage;
      if (!storage)
        fail(
          'STORAGE_UNAVAILABLE',
          `snapshot storage is not configured on host ${deps.hostId}`,
          'set SNAPFLOW_STORAGE_URL, SNAPFLOW_STORAGE_USERNAME and SNAPFLOW_STORAGE_PASSWORD for the host worker',
        );
      const repo = `${storage.registryHost}/${input.repository}`;
      const ctx = Context.current();
      await docker.getImage(input.source).tag({ repo, tag: input.tag });
      const log = new JobLog(input.log && deps.logs, input.log);
      try {
        const stream = await docker.getImage(repo).push({
          tag: input.tag,
          authconfig: { username: storage.username, password: storage.password, serveraddress: storage.registryHost },
        });
        stream.on('data', () => ctx.heartbeat({ step: 'push' }));
        logProgress(stream, log);
        const events = await followProgress(docker, stream).catch((err: Error) =>
          classifyRegistryError(err.message, `upload to ${storage.url}`, storage.registryHost, false),
        );
        const digest = events.map((e) => (e as { aux?: { Digest?: string } }).aux?.Digest).find(Boolean);
        if (!digest)
          throw ApplicationFailure.create({
            type: 'STORAGE_UNAVAILABLE',
            message: `upload of ${repo}:${input.tag} ended without a digest`,
            nonRetryable: false,
          });
        return { storedRef: `${repo}@${digest}`, digest };
      } finally {
        await log.flush();
        await docker
          .getImage(`${repo}:${input.tag}`)
          .remove({ noprune: true })
          .catch(() => undefined);
      }
    },
  };
}

export type ImageActivities = ReturnType<typeof createImageActivities>;
