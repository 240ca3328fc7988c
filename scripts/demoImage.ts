// The dev stack's source registry and the demo agent image the README's tour makes a snapshot of. Snapshot storage
// is never an image source, so `npm start` runs a second, public registry for images, and pushes one small agent
// image to it, made offline from the base image: its /app/start.sh stays up (a `sleep`), as an agent's does.
import type Docker from 'dockerode';
import { followProgress } from '../activities/progress';
import { BASE_IMAGE_REF } from '../lib/presets';

/** Loopback port of the dev stack's source registry (public, like a registry the images come from). */
export const SOURCE_REGISTRY_PORT = 5001;
export const DEMO_AGENT = { repository: 'agents/support', tag: 'v1' } as const;

const START_SH = '#!/bin/sh\necho "support agent starting"\nwhile true; do sleep 3600; done\n';

/** Pushes `<registryHost>/agents/support:v1` unless the registry has it already; returns the reference. */
export async function ensureDemoAgentImage(docker: Docker, registryHost: string): Promise<string> {
  const ref = `${registryHost}/${DEMO_AGENT.repository}:${DEMO_AGENT.tag}`;
  const manifest = await fetch(`http://${registryHost}/v2/${DEMO_AGENT.repository}/manifests/${DEMO_AGENT.tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  });
  if (manifest.ok) return ref;
  const container = await docker.createContainer({
    Image: BASE_IMAGE_REF,
    Cmd: ['sh', '-c', `printf '%s' "$START_SH" > /app/start.sh && chmod +x /app/start.sh`],
    Env: [`START_SH=${START_SH}`],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    if (StatusCode !== 0) throw new Error(`writing the demo agent's /app/start.sh exited ${StatusCode}`);
    await container.commit({ repo: `${registryHost}/${DEMO_AGENT.repository}`, tag: DEMO_AGENT.tag, pause: false });
  } finally {
    await container.remove({ force: true });
  }
  await followProgress(docker, await docker.getImage(`${registryHost}/${DEMO_AGENT.repository}`).push({ tag: DEMO_AGENT.tag }));
  return ref;
}
