// The offline base image every sandbox starts from: a busybox-static rootfs with /app/start.sh, made
// with `docker import` (no registry pulls). Host workers ensure it on start; so do the dev stack and tests.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { BASE_IMAGE, BASE_IMAGE_REF } from '../lib/presets';
import { followProgress } from './progress';

/** Idempotent: an existing image is kept. */
export async function ensureBaseImage(docker: Docker): Promise<string> {
  const ref = BASE_IMAGE_REF;
  const existing = await docker
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  if (existing) return ref;
  const rootfs = mkdtempSync(join(tmpdir(), 'snapflow-rootfs-'));
  try {
    for (const dir of ['bin', 'app', 'tmp', 'etc', 'root', 'workspace', 'usr']) mkdirSync(join(rootfs, dir));
    const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
    if (!busybox) throw new Error('busybox-static is not installed: run bash scripts/provision.sh');
    writeFileSync(join(rootfs, 'bin', 'busybox'), readFileSync(busybox));
    chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
    const applets = spawnSync(busybox, ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const applet of applets) if (applet !== 'busybox') symlinkSync('busybox', join(rootfs, 'bin', applet));
    symlinkSync('../bin', join(rootfs, 'usr', 'bin'));
    symlinkSync('bin', join(rootfs, 'sbin'));
    writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
    // The default entrypoint: announce readiness, then run what the sandbox was started with.
    writeFileSync(join(rootfs, 'app', 'start.sh'), '#!/bin/sh\necho "snapflow sandbox ready"\n[ "$#" -gt 0 ] && exec "$@"\nexit 0\n', {
      mode: 0o755,
    });
    const tar = spawn('tar', ['-C', rootfs, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const stream = await docker.importImage(tar.stdout, {
      repo: BASE_IMAGE.repository,
      tag: BASE_IMAGE.tag,
      changes: ['CMD ["/app/start.sh"]', 'WORKDIR /workspace', `LABEL io.snapflow.base-version=${BASE_IMAGE.tag}`],
    });
    await followProgress(docker, stream);
    return ref;
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}
