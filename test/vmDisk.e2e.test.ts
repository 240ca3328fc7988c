// A vm sandbox's root is a disk: an agent image far larger than the guest's RAM runs in a `small` vm, its files on
// the image's base disk (ext4) and what its jobs write on the sandbox's own overlay, kept across a session restore.
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { baseDisk } from '../activities/vm/baseDisk';
import { BASE_IMAGE_REF } from '../lib/presets';
import { pushImage, sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
let source: Awaited<ReturnType<typeof sourceRegistry>>;
const hostId = uniqueHostId('vmdisk');
const ws = 'ws-vmdisk';
/** 1 GiB of zeros (cheap to store and push: it compresses), then a mark at its very end, read from the guest's disk. */
const PAYLOAD_BYTES = 1024 * 1024 * 1024;
const MARK = 'end-of-payload';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  source = await sourceRegistry(t.docker, 'vmdisk');
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await source?.stop();
  await t?.teardown();
});

/** The base image plus a 1 GiB /payload and an entrypoint that keeps running, pushed to the source registry. */
async function largeImage(): Promise<string> {
  const script = [
    `dd if=/dev/zero of=/payload bs=1048576 seek=1024 count=0 2>/dev/null`,
    `printf ${MARK} >> /payload`,
    `printf '#!/bin/sh\\nexec sleep 1000000\\n' > /app/start.sh`,
    'chmod 755 /app/start.sh',
  ].join(' && ');
  const container = await t.docker.createContainer({
    Image: BASE_IMAGE_REF,
    Cmd: ['sh', '-c', script],
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await container.start();
    expect(await container.wait()).toMatchObject({ StatusCode: 0 });
    await container.commit({ repo: 'snapflow-test/large', tag: 'v1', pause: false, changes: ['CMD ["/app/start.sh"]'] });
  } finally {
    await container.remove({ force: true });
  }
  await pushImage(t.docker, 'snapflow-test/large:v1', { registryHost: source.host, repository: 'agents/large', tag: 'v1' });
  await t.docker.getImage('snapflow-test/large:v1').remove();
  return `${source.host}/agents/large:v1`;
}

const sh = (script: string) => ({ command: ['sh', '-c', script] });

test('a 1 GiB agent image runs as a small vm sandbox with less RAM than the image; its writes survive a session restore', async () => {
  const image = await largeImage();
  const created = await t.client.snapshots.create({ workspace: ws, runtime: 'codex', size: 'small', name: 'large-v1', image });
  await t.client.snapshots.wait(created);
  const { sandboxId } = await t.client.sandboxes.create({ workspace: ws, class: 'vm', snapshot: 'large-v1' });

  const facts = await t.client.sandboxes.runJob(
    sandboxId,
    sh(
      'stat -c %s /payload; tail -c 14 /payload; echo; awk \'$2 == "/" {print $1, $3}\' /proc/mounts; ' +
        'awk \'/MemTotal/ {print ($2 < 1048576) ? "ram-below-1g" : "ram-1g-or-more"}\' /proc/meminfo',
    ),
  );
  expect(facts).toMatchObject({
    exitCode: 0,
    stdout: `${PAYLOAD_BYTES + MARK.length}\n${MARK}\n/dev/vda ext4\nram-below-1g\n`,
  });

  // A job writes to the disk and leaves a process running; the session holds both, the next job finds both.
  const job = await t.client.sandboxes.runJob(
    sandboxId,
    sh(
      'head -c 1048576 /dev/urandom > /root/written; md5sum < /root/written > /root/written.md5; sleep 1000 & echo $! > /root/bg.pid; echo ok',
    ),
    { waitForSession: true },
  );
  expect(job).toMatchObject({ exitCode: 0, stdout: 'ok\n', stopped: true, sessionSnapshotId: expect.any(String) });
  const next = await t.client.sandboxes.runJob(
    sandboxId,
    sh('kill -0 "$(cat /root/bg.pid)" && md5sum < /root/written | cmp - /root/written.md5 && tail -c 14 /payload && echo " alive"'),
  );
  expect(next).toMatchObject({ exitCode: 0, stdout: `${MARK} alive\n`, resumedFrom: { source: 'session' } });
  await t.client.sandboxes.destroy(sandboxId);
});

test('two hosts build the same base disk of an image, byte for byte, so a saved machine restores over either', async () => {
  const sha256 = async (file: string) => {
    const hash = createHash('sha256');
    await pipeline(createReadStream(file), hash);
    return hash.digest('hex');
  };
  const caches = ['a', 'b'].map((name) => mkdtempSync(join(t.stack.dir, `disk-${name}-`)));
  try {
    const first = await baseDisk(t.docker, BASE_IMAGE_REF, { cacheDir: caches[0]!, diskMiB: 64 });
    await new Promise((r) => setTimeout(r, 1100)); // another second on the host's clock: the files' ctimes differ
    const second = await baseDisk(t.docker, BASE_IMAGE_REF, { cacheDir: caches[1]!, diskMiB: 64 });
    expect(second.buildId).toBe(first.buildId);
    expect(await sha256(second.file)).toBe(await sha256(first.file));
  } finally {
    for (const cache of caches) rmSync(cache, { recursive: true, force: true });
  }
});
