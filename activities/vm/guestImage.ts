// A guest's root filesystem: a Docker image's files (`docker export` of a container made from it, never started)
// plus the guest agent, packed as a gzip'd newc initramfs. The kernel unpacks it into RAM and runs the agent as
// the first process, so the root lives in guest memory and a memory snapshot holds the whole machine, files and
// processes alike, with no disk to keep consistent beside it. Cached per image id and agent build.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import { SnapflowError } from '../../lib/errors';
import type { GuestFile } from './guestModules';
import { GUEST_AGENT_PATH } from './machine';
import type { VmHandle } from './types';

export interface GuestImage {
  initrd: string;
  image: VmHandle['image'];
}

/** The initramfs for `ref` on this host's engine, built once per image id and agent build. */
export interface GuestImageOptions {
  cacheDir: string;
  agent: string;
  /** Placed beside the agent (the channel's kernel modules): part of the cache key. */
  files: GuestFile[];
}

export async function guestImage(docker: Docker, ref: string, opts: GuestImageOptions): Promise<GuestImage> {
  const info = await docker
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  if (!info) throw new SnapflowError({ code: 'IMAGE_NOT_FOUND', message: `image ${ref} is not on this host's engine` });
  const image = {
    ref,
    digest: info.Id,
    env: Object.fromEntries((info.Config.Env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
    workdir: info.Config.WorkingDir || '/',
  };
  const dir = join(opts.cacheDir, 'vm-images', `${info.Id.replace('sha256:', '').slice(0, 24)}-${agentHash(opts)}`);
  return cached(dir, image, opts, async (root) => {
    const container = await docker.createContainer({ Image: ref, Entrypoint: ['/nonexistent'], Cmd: [], NetworkDisabled: true });
    try {
      await untar(await container.export(), root);
    } finally {
      await container.remove({ force: true }).catch(() => undefined);
    }
    rmSync(join(root, '.dockerenv'), { force: true });
  });
}

/** A root holding only the agent: enough for the accel probe and for tests of the agent itself. */
export function bareGuestImage(opts: GuestImageOptions): Promise<GuestImage> {
  const hash = agentHash(opts);
  const image = { ref: 'bare', digest: `bare-${hash}`, env: {}, workdir: '/' };
  return cached(join(opts.cacheDir, 'vm-images', `bare-${hash}`), image, opts, async () => undefined);
}

async function cached(
  dir: string,
  image: GuestImage['image'],
  opts: GuestImageOptions,
  fill: (root: string) => Promise<void>,
): Promise<GuestImage> {
  const initrd = join(dir, 'initrd.gz');
  const manifest = join(dir, 'image.json');
  if (existsSync(initrd) && existsSync(manifest))
    return { initrd, image: JSON.parse(readFileSync(manifest, 'utf8')) as GuestImage['image'] };
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  try {
    const root = join(work, 'root');
    mkdirSync(root, { recursive: true });
    await fill(root);
    for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'root', dirname(GUEST_AGENT_PATH).slice(1)])
      mkdirSync(join(root, d), { recursive: true });
    copyFileSync(opts.agent, join(root, GUEST_AGENT_PATH.slice(1)));
    chmodSync(join(root, GUEST_AGENT_PATH.slice(1)), 0o755);
    for (const file of opts.files) {
      mkdirSync(dirname(join(root, file.guestPath.slice(1))), { recursive: true });
      copyFileSync(file.hostPath, join(root, file.guestPath.slice(1)));
      chmodSync(join(root, file.guestPath.slice(1)), file.mode);
    }
    await run('sh', [
      '-c',
      'cd "$1" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > "$2"',
      'sh',
      root,
      join(work, 'initrd.gz'),
    ]);
    writeFileSync(join(work, 'image.json'), JSON.stringify(image));
    rmSync(root, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dirname(dir), { recursive: true });
    renameSync(work, dir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { initrd, image };
}

const agentHashes = new Map<string, string>();
function agentHash(opts: GuestImageOptions): string {
  const key = [opts.agent, ...opts.files.map((f) => `${f.guestPath}=${f.hostPath}:${f.mode}`)].join('\0');
  let hash = agentHashes.get(key);
  if (!hash) {
    const digest = createHash('sha256').update(readFileSync(opts.agent));
    for (const f of opts.files) digest.update(`\0${f.guestPath}\0${f.mode}\0`).update(readFileSync(f.hostPath));
    agentHashes.set(key, (hash = digest.digest('hex').slice(0, 12)));
  }
  return hash;
}

function untar(tar: NodeJS.ReadableStream, root: string): Promise<void> {
  const child = spawn('tar', ['-x', '-C', root, '--numeric-owner'], { stdio: ['pipe', 'ignore', 'pipe'] });
  tar.pipe(child.stdin);
  return exited(child, 'tar -x (docker export)');
}

function run(command: string, args: string[]): Promise<void> {
  return exited(spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }), command);
}

function exited(child: ReturnType<typeof spawn>, what: string): Promise<void> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((done, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? done() : fail(new Error(`${what} failed (exit ${code}): ${stderr.trim()}`))));
  });
}
