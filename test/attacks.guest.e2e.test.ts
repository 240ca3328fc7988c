// Attacks on the host through an image, QEMU, the run directory and saved machines, on the real stack (host worker,
// QEMU, dockerd, registry). Each case names the attack and what must happen instead; images are made offline by
// re-packing the base image's export with the hostile entries (nothing of them is created on this host by the test).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  linkSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { extract, pack, type Headers } from 'tar-stream';
import { followProgress } from '../activities/progress';
import { baseDisk } from '../activities/vm/baseDisk';
import { DEFAULT_VM_UIDS, cacheDir, isQemuAlive, machineFiles, vmTools, vmUser } from '../activities/vm/machine';
import { createVmRuntime } from '../activities/vm/runtime';
import { cachedStateFile, importSavedState } from '../activities/vm/stateArtifacts';
import { createHostSandboxActivities } from '../activities/sandbox/host';
import { describeFailure } from '../lib/errors';
import { BASE_IMAGE_REF } from '../lib/presets';
import { snapshots } from '../db/schema';
import { eq } from 'drizzle-orm';
import { vmPlaces } from '../workers/host';
import { pushImage, sourceRegistry } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
let source: Awaited<ReturnType<typeof sourceRegistry>>;
let scratch: string;
const hostId = uniqueHostId('attacks');
const ws = 'ws-attacks';

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  source = await sourceRegistry(t.docker, 'attacks');
  scratch = mkdtempSync(join(t.stack.dir, 'attacks-'));
});
afterAll(async () => {
  await destroyEverySandbox(t);
  await source?.stop();
  await t?.teardown();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

type Extra = { header: Headers; body?: string };

/** The base image's files plus `extra`, imported as a new image and pushed to the source registry. */
async function hostileImage(tag: string, extra: Extra[]): Promise<string> {
  const container = await t.docker.createContainer({ Image: BASE_IMAGE_REF, Cmd: ['true'] });
  try {
    const out = pack();
    const input = extract();
    input.on('entry', (header, stream, next) => {
      // An image snapshot's entrypoint keeps running (the base's returns at once): replaced below.
      if (header.name === '.dockerenv' || header.name === 'app/start.sh') return stream.on('end', next).resume();
      stream.pipe(out.entry(header, next));
    });
    input.on('finish', () => {
      const entrypoint = { header: { name: 'app/start.sh', type: 'file', mode: 0o755 }, body: '#!/bin/sh\nexec sleep 1000000\n' } as const;
      for (const e of [entrypoint, ...extra]) out.entry({ mtime: new Date(), uid: 0, gid: 0, ...e.header }, e.body ?? '');
      out.finalize();
    });
    ((await container.export()) as NodeJS.ReadableStream).pipe(input);
    const repo = 'snapflow-test/hostile';
    await followProgress(
      t.docker,
      await t.docker.importImage(out as unknown as NodeJS.ReadableStream, {
        repo,
        tag,
        changes: ['CMD ["/app/start.sh"]', 'WORKDIR /workspace'],
      }),
    );
    await pushImage(t.docker, `${repo}:${tag}`, { registryHost: source.host, repository: `tools/hostile-${tag}`, tag: 'v1' });
    await t.docker.getImage(`${repo}:${tag}`).remove();
    return `${source.host}/tools/hostile-${tag}:v1`;
  } finally {
    await container.remove({ force: true });
  }
}

/** Snapshot of `image`, then a keep-alive vm sandbox on it; returns the sandbox id. */
async function vmSandboxOn(name: string, image: string): Promise<string> {
  const created = await t.client.snapshots.create({ workspace: ws, runtime: 'codex', size: 'small', name, image });
  await t.client.snapshots.wait(created);
  const box = await t.client.sandboxes.create({ workspace: ws, class: 'vm', snapshot: name, keepAlive: true });
  return box.sandboxId;
}

const sh = (script: string) => ({ command: ['sh', '-c', script] });

/** What a host path looks like: kind, mode, owner, content (files) or entries (directories). */
function fingerprint(path: string): string {
  const st = lstatSync(path);
  const what = st.isDirectory() ? readdirSync(path).sort().join(',') : readFileSync(path, 'base64');
  return `${st.mode.toString(8)}:${st.uid}:${what}`;
}

/** Device nodes and setuid/setgid files anywhere under `dirs` (what the image must never leave on the host). */
function privilegedFiles(dirs: string[]): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.isBlockDevice() || st.isCharacterDevice() || (st.isFile() && st.mode & 0o6000)) found.push(path);
      if (st.isDirectory()) walk(path);
    }
  };
  for (const dir of dirs) walk(dir);
  return found;
}

const qemuPids = (): number[] => {
  try {
    return execFileSync('pgrep', ['-f', `${vmPlaces(hostId).runRoot}/`], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
};

describe('an image cannot write through the host worker', () => {
  const cases: Array<{ attack: string; tag: string; target: () => string; extra: (target: string) => Extra[] }> = [
    {
      attack: '/.snapflow is a symlink to a host directory',
      tag: 'dirlink',
      target: () => {
        const dir = join(scratch, 'victim-dir');
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, 'kept'), 'host data\n');
        return dir;
      },
      extra: (target) => [{ header: { name: '.snapflow', type: 'symlink', linkname: target, mode: 0o777 } }],
    },
    {
      attack: '/.snapflow/agent is a symlink to a host file of mode 0600',
      tag: 'filelink',
      target: () => {
        const file = join(scratch, 'victim-file');
        writeFileSync(file, 'secret host file\n', { mode: 0o600 });
        chmodSync(file, 0o600);
        return file;
      },
      extra: (target) => [
        { header: { name: '.snapflow/', type: 'directory', mode: 0o755 } },
        { header: { name: '.snapflow/agent', type: 'symlink', linkname: target, mode: 0o777 } },
      ],
    },
  ];

  test.each(cases)('$attack: the sandbox works with its own agent, the host path is unchanged', async ({ tag, target, extra }) => {
    const victim = target();
    const before = fingerprint(victim);
    const sandboxId = await vmSandboxOn(`hostile-${tag}`, await hostileImage(tag, extra(victim)));
    const job = await t.client.sandboxes.runJob(sandboxId, sh('ls -l /.snapflow/agent | cut -c1-10; echo ok'));
    expect(job).toMatchObject({ exitCode: 0, stdout: '-rwxr-xr-x\nok\n' });
    expect(fingerprint(victim)).toBe(before);
    expect(existsSync(join(victim, 'agent'))).toBe(false);
    await t.client.sandboxes.destroy(sandboxId);
  });
});

test('device nodes and setuid files of an image never exist on the host, and the guest has them as the image says', async () => {
  const image = await hostileImage('devices', [
    // Not under /dev: the agent mounts devtmpfs there.
    { header: { name: 'srv/sfblk', type: 'block-device', mode: 0o666, devmajor: 7, devminor: 0 } },
    { header: { name: 'usr/local/sbin/sfsuid', type: 'file', mode: 0o4755 }, body: '#!/bin/sh\nid -u\n' },
  ]);
  // Watched while the host builds the guest root: its image cache (staging directories included) and VM directories.
  const watched = [join(cacheDir(), 'vm-images'), vmPlaces(hostId).runRoot, t.stack.dir];
  const seen = new Set<string>();
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const path of privilegedFiles(watched)) if (!path.includes('/docker/')) seen.add(path); // dockerd's own storage holds the image
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  let sandboxId: string;
  try {
    sandboxId = await vmSandboxOn('hostile-devices', image);
  } finally {
    watching = false;
    await watcher;
  }
  expect([...seen]).toEqual([]);
  const job = await t.client.sandboxes.runJob(sandboxId, sh("stat -c '%A %t,%T' /srv/sfblk; stat -c '%A %u' /usr/local/sbin/sfsuid"));
  expect(job).toMatchObject({ exitCode: 0, stdout: 'brw-rw-rw- 7,0\n-rwsr-xr-x 0\n' });

  // QEMU runs under its seccomp filter (mode 2: filtering).
  const [pid] = qemuPids();
  expect(pid).toBeDefined();
  expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Seccomp:\t2$/m);
  await t.client.sandboxes.destroy(sandboxId);
});

test("an image larger than the VM's disk allows is refused IMAGE_TOO_LARGE, naming the limit; nothing is left behind", async () => {
  const cache = mkdtempSync(join(scratch, 'cache-'));
  // A 1 MiB disk holds at most 0 MiB (90 %, rounded down) of the image's files; the base image's busybox alone is more.
  const refused = baseDisk(t.docker, BASE_IMAGE_REF, { cacheDir: cache, diskMiB: 1 });
  await expect(refused).rejects.toMatchObject({
    code: 'IMAGE_TOO_LARGE',
    field: 'image',
    message: expect.stringContaining('a vm disk of 1 MiB holds at most 0 MiB'),
  });
  expect(readdirSync(join(cache, 'vm-images'))).toEqual([]);
  expect(await t.docker.listContainers({ all: true, filters: { ancestor: [BASE_IMAGE_REF] } })).toEqual([]);
});

describe('the run directory is the worker’s alone', () => {
  const cases: Array<{ attack: string; make: (dir: string) => void }> = [
    { attack: 'made by another user', make: (dir) => (mkdirSync(dir, { mode: 0o700 }), chownSync(dir, 65534, 65534)) },
    { attack: 'a symlink to another directory', make: (dir) => symlinkSync(mkdtempSync(join(scratch, 'elsewhere-')), dir) },
    { attack: 'mode 0777', make: (dir) => (mkdirSync(dir), chmodSync(dir, 0o777)) },
  ];
  test.each(cases)('a run directory $attack is refused, naming SNAPFLOW_VM_RUN_DIR', async ({ make }) => {
    const runRoot = join(mkdtempSync('/tmp/sfvm-attack-'), 'run');
    make(runRoot);
    const vm = createVmRuntime({ docker: t.docker, runRoot });
    try {
      await expect(vm.create({ id: 'refused', image: BASE_IMAGE_REF, memoryMiB: 512, vcpus: 1 })).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        field: 'SNAPFLOW_VM_RUN_DIR',
      });
      expect(existsSync(join(runRoot, 'refused'))).toBe(false);
    } finally {
      rmSync(join(runRoot, '..'), { recursive: true, force: true });
    }
  });

  test("a missing run directory is made 0700, and so is each VM directory; QEMU's own is its user's", async () => {
    const runRoot = join(mkdtempSync('/tmp/sfvm-attack-'), 'run');
    const vm = createVmRuntime({ docker: t.docker, runRoot });
    const handle = await vm.create({ id: 'private', image: BASE_IMAGE_REF, memoryMiB: 512, vcpus: 1 });
    try {
      expect(statSync(runRoot).mode & 0o777).toBe(0o700);
      expect(statSync(handle.dir).uid).toBe(process.getuid!());
      expect(statSync(handle.dir).mode & 0o777).toBe(0o700);
      const qemuDir = statSync(machineFiles(handle.dir).qemuDir);
      expect({ gid: qemuDir.gid, mode: qemuDir.mode & 0o777 }).toEqual({ gid: vmUser()?.gid ?? process.getgid!(), mode: 0o700 });
      // A root worker gives each machine a uid of its own, from the machine range; one that is not root cannot.
      if (vmUser()) {
        expect(qemuDir.uid).toBeGreaterThanOrEqual(DEFAULT_VM_UIDS.first);
        expect(qemuDir.uid).toBeLessThanOrEqual(DEFAULT_VM_UIDS.last);
      } else expect(qemuDir.uid).toBe(process.getuid!());
    } finally {
      await vm.remove(handle);
      rmSync(join(runRoot, '..'), { recursive: true, force: true });
    }
  });
});

describe('saved machines', () => {
  let storedRef: string;
  const stateDir = (): string => join(t.stack.dir, 'vm', hostId);
  /** The host's activities as its worker builds them, run in an activity context of their own. */
  const hostActivities = () =>
    createHostSandboxActivities({
      docker: t.docker,
      hostId,
      dockerHost: t.stack.dockerHost,
      storage: t.config.storage,
      runRoot: join(scratch, 'restore-run'),
      cacheDir: cacheDir(),
      stateDir: stateDir(),
      memoryMiB: 512,
    }).activities;
  const failureOf = async (work: Promise<unknown>) => describeFailure(await work.then(() => undefined).catch((err: unknown) => err));

  beforeAll(async () => {
    const box = await t.client.sandboxes.create({ workspace: ws, class: 'vm', size: 'small', runtime: 'codex' });
    const job = await t.client.sandboxes.runJob(box.sandboxId, sh('echo secret-in-memory > /root/note; sleep 1000 &'), {
      waitForSession: true,
    });
    const [session] = await t.db.db.select().from(snapshots).where(eq(snapshots.id, job.sessionSnapshotId!));
    storedRef = session!.storedRef!;
  });

  test('state files are 0600 in 0700 directories', () => {
    const dir = join(stateDir(), 'vm-states');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThan(0);
    for (const name of files) expect(`${name} ${(statSync(join(dir, name)).mode & 0o777).toString(8)}`).toBe(`${name} 600`);
  });

  test("a restore of another workspace's session is refused on the host", async () => {
    const failure = await failureOf(
      new MockActivityEnvironment().run(hostActivities().restoreVmSandbox, {
        key: 'foreign-1',
        stateRef: storedRef,
        workspace: 'ws-attacks-other',
        workflowId: 'attacks-foreign',
      }),
    );
    expect(failure.code).toBe('PERMISSION_DENIED');
    expect(existsSync(join(scratch, 'restore-run', 'foreign-1'))).toBe(false);
  });

  test('a cached state with a flipped byte fails STATE_CORRUPT and is evicted; the next restore fetches a good copy', async () => {
    const file = cachedStateFile(stateDir(), storedRef);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(file, bytes);
    const activities = hostActivities();
    const input = { key: 'corrupt-1', stateRef: storedRef, workspace: ws, workflowId: 'attacks-corrupt' };
    const failure = await failureOf(new MockActivityEnvironment().run(activities.restoreVmSandbox, input));
    expect(failure.code).toBe('STATE_CORRUPT');
    expect(existsSync(file)).toBe(false);

    const restored = (await new MockActivityEnvironment().run(activities.restoreVmSandbox, { ...input, key: 'corrupt-2' })) as {
      containerId: string;
      pulled: boolean;
    };
    // Host calls on the machine come from the workflow that restored it (the host checks the handle's owner).
    const owner = (): MockActivityEnvironment =>
      new MockActivityEnvironment({ workflowExecution: { workflowId: input.workflowId, runId: '00000000-0000-4000-8000-000000000001' } });
    try {
      expect(restored.pulled).toBe(true);
      const job: { stdout: string } = await owner().run(activities.execInSandbox, {
        containerId: restored.containerId,
        command: ['cat', '/root/note'],
      });
      expect(job.stdout).toBe('secret-in-memory\n');
    } finally {
      await owner().run(activities.removeSandbox, { containerId: restored.containerId });
    }
  });
});

/** The uid and gid a running QEMU holds (its real ones, from /proc). */
function qemuIds(pid: number): { uid: number; gid: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const first = (name: string) => Number(new RegExp(`^${name}:\t(\\d+)`, 'm').exec(status)?.[1]);
  return { uid: first('Uid'), gid: first('Gid') };
}

// A root worker (CI, the host image) runs QEMU as a user of its own; a worker that is not root cannot switch.
const asRootWorker = process.getuid?.() === 0 ? describe : describe.skip;

asRootWorker('a guest that takes over its QEMU holds an unprivileged user of its own, under seccomp', () => {
  let sandboxId: string;
  let pid: number;
  let vmDir: string;
  /** Another tenant's machine on the same host. */
  let other: { sandboxId: string; pid: number; vmDir: string };
  const denied = { status: 1, stderr: expect.stringContaining('Permission denied') };
  /** Runs `argv` as this QEMU's user: what a guest that took over its QEMU could do on the host. */
  const asQemuUser = (argv: string[]): { status: number | null; stderr: string } => {
    const run = spawnSync(argv[0]!, argv.slice(1), { ...qemuIds(pid), encoding: 'utf8' });
    return { status: run.status, stderr: run.stderr };
  };
  const machine = async (workspace: string) => {
    const box = await t.client.sandboxes.create({ workspace, class: 'vm', size: 'small', runtime: 'codex', keepAlive: true });
    await t.client.sandboxes.runJob(box.sandboxId, sh('echo up'), { waitForSession: true });
    const pids = qemuPids().filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`/${box.sandboxId}-`));
    expect(pids).toHaveLength(1);
    return { sandboxId: box.sandboxId, pid: pids[0]!, vmDir: dirname(readlinkSync(`/proc/${pids[0]!}/cwd`)) };
  };
  const stateFiles = (): string[] => {
    const dir = join(t.stack.dir, 'vm', hostId, 'vm-states');
    return readdirSync(dir).map((name) => join(dir, name));
  };

  beforeAll(async () => {
    ({ sandboxId, pid, vmDir } = await machine(ws));
    other = await machine(`${ws}-other`);
  });
  afterAll(async () => {
    if (sandboxId) await t.client.sandboxes.destroy(sandboxId);
    if (other) await t.client.sandboxes.destroy(other.sandboxId);
  });

  const cases: Array<{ attack: string; check: () => void }> = [
    {
      attack: 'it is root, holds a capability, or runs without its seccomp filter (Seccomp: 2 in /proc/<pid>/status)',
      check: () => {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const field = (name: string) => new RegExp(`^${name}:\t(.*)$`, 'm').exec(status)?.[1];
        const { uid, gid } = qemuIds(pid);
        expect(uid).not.toBe(0);
        expect(gid).toBe(vmUser()!.gid);
        expect({
          Uid: field('Uid'),
          Gid: field('Gid'),
          Seccomp: field('Seccomp'),
          NoNewPrivs: field('NoNewPrivs'),
          CapEff: field('CapEff'),
          CapBnd: field('CapBnd'),
        }).toEqual({
          Uid: `${uid}\t${uid}\t${uid}\t${uid}`,
          Gid: `${gid}\t${gid}\t${gid}\t${gid}`,
          Seccomp: '2',
          NoNewPrivs: '1',
          CapEff: '0000000000000000',
          CapBnd: '0000000000000000',
        });
      },
    },
    {
      attack: 'it reads a saved machine in the state cache (0600 files in a 0700 directory of the worker)',
      check: () => {
        const files = stateFiles();
        expect(files.length).toBeGreaterThan(0);
        expect(asQemuUser(['ls', dirname(files[0]!)])).toEqual({ status: 2, stderr: expect.stringContaining('Permission denied') });
        for (const file of files) {
          expect(statSync(file).uid).not.toBe(qemuIds(pid).uid);
          expect(asQemuUser(['cat', file])).toEqual(denied);
        }
      },
    },
    {
      attack: "it reads the host's image cache (every workspace's guest roots) or the kernel there",
      check: () => {
        expect(asQemuUser(['ls', join(cacheDir(), 'vm-images')])).toEqual({
          status: 2,
          stderr: expect.stringContaining('Permission denied'),
        });
        expect(asQemuUser(['cat', vmTools().kernel])).toEqual(denied);
      },
    },
    {
      attack: "it rewrites its VM's handle or owner (the worker's files beside its directory)",
      check: () => {
        for (const file of [machineFiles(vmDir).handle, join(vmDir, 'owner')]) {
          expect(existsSync(file)).toBe(true);
          expect(asQemuUser(['sh', '-c', 'echo forged > "$0"', file])).toEqual({
            status: 2,
            stderr: expect.stringContaining('Permission denied'),
          });
        }
      },
    },
    {
      attack: "it reads or writes another machine's memory or disk (each QEMU has a uid of its own)",
      check: () => {
        const mine = qemuIds(pid);
        const theirs = qemuIds(other.pid);
        expect(theirs.uid).not.toBe(mine.uid);
        expect(theirs.gid).toBe(mine.gid); // the group only opens the boot inputs, and only while a guest boots
        const { qemuDir, ram, overlay } = machineFiles(other.vmDir);
        for (const file of [ram, overlay]) {
          expect(existsSync(file)).toBe(true);
          expect({ uid: statSync(file).uid, groupOrOthers: statSync(file).mode & 0o077 }).toEqual({ uid: theirs.uid, groupOrOthers: 0 });
          expect(asQemuUser(['cat', file])).toEqual(denied);
          expect(asQemuUser(['sh', '-c', 'echo forged >> "$0"', file]).status).not.toBe(0);
        }
        expect(asQemuUser(['ls', qemuDir])).toEqual({ status: 2, stderr: expect.stringContaining('Permission denied') });
      },
    },
    {
      attack: "another user's process names the VM's directory on its command line, to pass for its QEMU",
      check: () => {
        expect(isQemuAlive(pid, vmDir)).toBe(true);
        const impostor = spawn('sh', ['-c', 'sleep 30; :', `guest=${vmDir}`], { stdio: 'ignore' });
        try {
          expect(readFileSync(`/proc/${impostor.pid}/cmdline`, 'utf8')).toContain(`guest=${vmDir}`);
          expect(isQemuAlive(impostor.pid!, vmDir)).toBe(false);
        } finally {
          impostor.kill('SIGKILL');
        }
      },
    },
    {
      attack: 'it reads its kernel or initrd again once the guest runs (their links are gone)',
      check: () => {
        const names = readdirSync(machineFiles(vmDir).qemuDir);
        expect(names).toEqual(expect.arrayContaining(['agent.sock', 'qmp.sock', 'console.log']));
        expect(names.filter((n) => n === 'vmlinuz' || n === 'initrd')).toEqual([]);
      },
    },
  ];

  test.each(cases)('$attack: refused', ({ check }) => check());
});

describe("a save is taken from QEMU's directory only as QEMU's own regular file, bounded", () => {
  const owner = vmUser()?.uid ?? process.getuid!();
  const ownedBy = (file: string, uid: number) => (process.getuid?.() === 0 ? chownSync(file, uid, uid) : undefined);
  const cases: Array<{ attack: string; plant: (saved: string, victim: string) => void; why: RegExp }> = [
    {
      attack: 'the state file is a symlink to a host file',
      plant: (saved, victim) => symlinkSync(victim, saved),
      why: /cannot be opened \(ELOOP\)/,
    },
    {
      attack: 'the state file is a hard link to a host file',
      plant: (saved, victim) => linkSync(victim, saved),
      why: /is not QEMU's own file/,
    },
    { attack: 'the state file is a directory', plant: (saved) => mkdirSync(saved), why: /is not a regular file/ },
    {
      attack: "the state file is larger than the machine's RAM saves",
      plant: (saved) => (writeFileSync(saved, Buffer.alloc(4096, 1)), ownedBy(saved, owner)),
      why: /is larger \(4096 bytes\)/,
    },
  ];
  test.each(cases)('$attack: refused VM_SNAPSHOT_FAILED, nothing reaches the cache', async ({ plant, why }) => {
    const dir = mkdtempSync(join(scratch, 'import-'));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'host secret\n', { mode: 0o600 });
    ownedBy(victim, 0);
    const saved = join(dir, 'state.zst');
    plant(saved, victim);
    const to = join(dir, 'cached.zst');
    await expect(importSavedState(saved, to, { owner, maxBytes: 1024 })).rejects.toMatchObject({
      code: 'VM_SNAPSHOT_FAILED',
      message: expect.stringMatching(why),
    });
    expect(readdirSync(dir).filter((n) => n.startsWith('cached'))).toEqual([]);
  });

  test("QEMU's own file is copied, 0600 and the worker's, with its digest", async () => {
    const dir = mkdtempSync(join(scratch, 'import-'));
    const saved = join(dir, 'state.zst');
    writeFileSync(saved, 'saved machine');
    ownedBy(saved, owner);
    const to = join(dir, 'cached.zst');
    const copied = await importSavedState(saved, to, { owner, maxBytes: 1024 });
    expect(copied).toEqual({ bytes: 13, sha256: `sha256:${createHash('sha256').update('saved machine').digest('hex')}` });
    expect({ text: readFileSync(to, 'utf8'), uid: statSync(to).uid, mode: statSync(to).mode & 0o777 }).toEqual({
      text: 'saved machine',
      uid: process.getuid!(),
      mode: 0o600,
    });
  });
});
