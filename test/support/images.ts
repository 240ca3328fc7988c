// Test images, made offline from the base image and pushed to the test registries.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { followProgress } from '../../activities/progress';
import { BASE_IMAGE_REF } from '../../lib/presets';
import { freePort, startRegistry, stopProcess } from '../../scripts/stack';

export interface Credentials {
  username: string;
  password: string;
}

/** Tags an image into `registryHost/repository:tag` and pushes it; returns the pushed digest. */
export async function pushImage(
  docker: Docker,
  source: string,
  target: { registryHost: string; repository: string; tag: string; credentials?: Credentials },
): Promise<string> {
  const repo = `${target.registryHost}/${target.repository}`;
  await docker.getImage(source).tag({ repo, tag: target.tag });
  const auth = target.credentials ? { authconfig: { ...target.credentials, serveraddress: target.registryHost } } : {};
  const events = await followProgress(docker, await docker.getImage(repo).push({ tag: target.tag, ...auth }));
  await docker.getImage(`${repo}:${target.tag}`).remove({ noprune: true });
  const digest = events.map((e) => (e as { aux?: { Digest?: string } }).aux?.Digest).find(Boolean);
  if (!digest) throw new Error(`push of ${repo}:${target.tag} returned no digest`);
  return digest;
}

/** The base image with a shell command applied (e.g. `chmod -x /app/start.sh`), committed locally. */
export async function deriveImage(docker: Docker, command: string, tag: string): Promise<string> {
  const container = await docker.createContainer({
    Image: BASE_IMAGE_REF,
    Cmd: ['sh', '-c', command],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    await container.wait();
    await container.commit({ repo: 'snapflow-test/derived', tag, pause: false });
    return `snapflow-test/derived:${tag}`;
  } finally {
    await container.remove({ force: true });
  }
}

/**
 * A registry of its own for a test file's source images (snapshot storage is never a source), holding the base image
 * as `tools/<name>:v1`. Public unless given credentials: then htpasswd-protected with them (a GHCR stand-in takes
 * `x-access-token` and an installation token), and pushes use them. Returns the image reference and a stop function.
 */
export async function sourceRegistry(
  docker: Docker,
  name: string,
  credentials?: Credentials,
): Promise<{ host: string; image: string; credentials?: Credentials; stop: () => Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(process.env.SNAPFLOW_TEST_STATE!, '..', `source-${name}-`));
  const registry = await startRegistry({ dir, port, users: credentials ? [credentials] : undefined });
  const host = `127.0.0.1:${port}`;
  await pushImage(docker, BASE_IMAGE_REF, { registryHost: host, repository: `tools/${name}`, tag: 'v1', credentials });
  return { host, image: `${host}/tools/${name}:v1`, credentials, stop: () => stopProcess(registry) };
}
