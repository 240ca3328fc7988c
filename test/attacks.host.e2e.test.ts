// Attacks on a host by a tenant, or by anyone who can start workflows and schedule host activities, on the real
// stack (Temporal, dockerd, registry, QEMU). Each row is one attack and the typed refusal it must meet; what the
// attack would have changed is checked unchanged after it. Add a case by adding a row.
import { MockActivityEnvironment } from '@temporalio/testing';
import type { Info } from '@temporalio/activity';
import { eq } from 'drizzle-orm';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SANDBOX_CAPABILITIES, SANDBOX_PIDS_LIMIT } from '../activities/confinement';
import { createGoldenHostActivities } from '../activities/golden';
import { createImageActivities } from '../activities/images';
import { createHostSandboxActivities } from '../activities/sandbox/host';
import { sandboxes, snapshots } from '../db/schema';
import { describeFailure, type ErrorCode } from '../lib/errors';
import { taskQueues, workflowIds } from '../lib/ids';
import { BASE_IMAGE_REF } from '../lib/presets';
import { vmPlaces } from '../workers/host';
import type { createImageSnapshot, sandbox } from '../workflows';
import { deriveImage, pushImage } from './support/images';
import { createTestEnv, uniqueHostId, type TestEnv, destroyEverySandbox } from './support/stack';

let t: TestEnv;
const hostId = uniqueHostId('atk');
const ws = 'ws-attack';
/** A stored image of another workspace: what naming storage as a source would copy. */
let victimDigest = '';
let storagePort = '';

interface Box {
  sandboxId: string;
  containerId: string;
}
let victim: Box;
let attacker: Box;
let machine: Box;

beforeAll(async () => {
  t = await createTestEnv();
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  await t.client.refreshHost(hostId);
  await t.client.workspaces.create({ id: ws, plan: 'paid', admin: 'alice' });
  storagePort = t.stack.storage.registryHost.split(':')[1]!;
  victimDigest = await pushImage(t.docker, BASE_IMAGE_REF, {
    registryHost: t.stack.storage.registryHost,
    repository: 'snapflow/victim/secret',
    tag: 'v1',
    credentials: t.stack.storage,
  });
  const start = async (cls: 'container' | 'vm'): Promise<Box> => {
    const { sandboxId, status } = await t.client.sandboxes.create({
      workspace: ws,
      class: cls,
      size: 'small',
      runtime: 'codex',
      keepAlive: true,
    });
    return { sandboxId, containerId: status.containerId! };
  };
  victim = await start('container');
  attacker = await start('container');
  machine = await start('vm');
}, 300_000);

afterAll(async () => {
  await destroyEverySandbox(t);
  await t?.teardown();
});

/** What came back: the typed code and field, from a client error or a Temporal failure chain. */
const refusal = async (attempt: Promise<unknown>): Promise<{ code: ErrorCode; field?: string; message: string }> => {
  try {
    await attempt;
  } catch (err) {
    const f = describeFailure(err);
    return { code: f.code, message: f.message, ...(f.field ? { field: f.field } : {}) };
  }
  throw new Error('the attack was not refused');
};

/** Host activities built as the host worker builds them; a test runs them as if scheduled by a sandbox's workflow. */
let built: ReturnType<typeof buildHost> | undefined;
const host = () => (built ??= buildHost());
const buildHost = () => {
  return createHostSandboxActivities({
    docker: t.docker,
    hostId,
    dockerHost: t.stack.dockerHost,
    storage: t.stack.storage,
    ...vmPlaces(hostId),
    stateDir: join(t.stack.dir, 'vm', hostId),
    memoryMiB: 512,
  }).activities;
};
const asWorkflowOf = (sandboxId: string) =>
  new MockActivityEnvironment({
    workflowExecution: { workflowId: workflowIds.sandbox(sandboxId), runId: crypto.randomUUID() },
  } as Partial<Info>);
const claim = (box: Box) => ({ sandboxId: box.sandboxId, workspace: ws });

const running = async (containerId: string): Promise<boolean> =>
  t.docker
    .getContainer(containerId)
    .inspect()
    .then(
      (i) => i.State.Running,
      () => false,
    );
const answers = async (box: Box): Promise<string> =>
  (await t.client.sandboxes.runJob(box.sandboxId, { command: ['echo', 'still here'] })).stdout.trim();

/** Other spellings of storage's host (127.0.0.1 in tests) that reach it; each is tried with storage's port. */
const STORAGE_SPELLINGS = ['[::1]', '[::ffff:7f00:1]', '127.1', '0.0.0.0', '2130706433', '0x7f.1', '0177.0.0.1', 'localhost', '127.0.0.2'];
const IN_STORAGE = { code: 'VALIDATION_FAILED', field: 'image', message: expect.stringContaining('is in snapshot storage') };

describe('snapshot storage is never a source image, by any spelling', () => {
  test.each(STORAGE_SPELLINGS)('client: %s', async (spelling) => {
    const image = `${spelling}:${storagePort}/snapflow/victim/secret@${victimDigest}`;
    const name = `steal-client-${STORAGE_SPELLINGS.indexOf(spelling)}`;
    expect(
      await refusal(t.client.as('alice').snapshots.create({ workspace: ws, name, image, runtime: 'codex', size: 'small' })),
    ).toMatchObject(IN_STORAGE);
    expect(await t.db.db.select().from(snapshots).where(eq(snapshots.name, name))).toEqual([]);
  });

  test.each(STORAGE_SPELLINGS)('host, through a workflow started past the client: %s', async (spelling) => {
    const registry = `${spelling}:${storagePort}`;
    const name = `steal-host-${STORAGE_SPELLINGS.indexOf(spelling)}`;
    const run = t.client.temporal.workflow.execute<typeof createImageSnapshot>('createImageSnapshot', {
      taskQueue: taskQueues.control,
      workflowId: workflowIds.imageSnapshot(ws, name),
      args: [
        {
          snapshotId: crypto.randomUUID(),
          workspace: ws,
          name,
          image: { registry, repository: 'snapflow/victim/secret', digest: victimDigest },
          imageRef: `${registry}/snapflow/victim/secret@${victimDigest}`,
          entrypoint: '/app/start.sh',
          runtime: 'codex',
          size: 'small',
          profileKey: 'codex/small/base-1',
          requiresGithub: false,
          actor: 'alice',
        },
      ],
    });
    expect(await refusal(run)).toMatchObject(IN_STORAGE);
    const rows = await t.db.db.select().from(snapshots).where(eq(snapshots.name, name));
    expect(rows.map((r) => [r.status, r.errorCode, r.storedRef])).toEqual([['failed', 'VALIDATION_FAILED', null]]);
  });

  test('host, a pull asked for directly: the reference’s own registry decides', async () => {
    const images = createImageActivities({ docker: t.docker, hostId, storage: t.stack.storage, credentialsFor: async () => undefined });
    const ref = `127.1:${storagePort}/snapflow/victim/secret@${victimDigest}`;
    expect(await refusal(new MockActivityEnvironment().run(images.pullImage, { ref, registry: 'ghcr.io' }))).toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringContaining('snapshot storage'),
    });
    expect(await refusal(t.docker.getImage(ref).inspect())).toBeDefined(); // nothing was pulled
  });
});

describe('a start request cannot carry state past authorization', () => {
  const raw = (actor: string, carried?: object) => {
    const sandboxId = crypto.randomUUID();
    const run = t.client.temporal.workflow.execute<typeof sandbox>('sandbox', {
      taskQueue: taskQueues.control,
      workflowId: workflowIds.sandbox(sandboxId),
      args: [
        {
          sandboxId,
          workspace: ws,
          class: 'container',
          size: 'small',
          runtime: 'codex',
          profileKey: 'codex/small/base-1',
          keepAlive: true,
          actor,
          ...(carried ? { carried } : {}),
        } as Parameters<typeof sandbox>[0],
      ],
    });
    return { sandboxId, run };
  };

  test.each([
    ['carried state naming another sandbox’s container', 'mallory', true, { code: 'PERMISSION_DENIED', field: 'carried' }],
    ['carried state, even from a member of the workspace', 'alice', true, { code: 'PERMISSION_DENIED', field: 'carried' }],
    ['no carried state, an actor without a role: authorization applies', 'mallory', false, { code: 'PERMISSION_DENIED' }],
  ] as const)('%s', async (_name, actor, withCarried, expected) => {
    const carried = { state: 'idle', jobs: 0, generation: 1, hostId, containerId: victim.containerId };
    const { sandboxId, run } = raw(actor, withCarried ? carried : undefined);
    expect(await refusal(run)).toMatchObject(expected);
    expect(await t.db.db.select().from(sandboxes).where(eq(sandboxes.id, sandboxId))).toEqual([]);
    expect(await running(victim.containerId)).toBe(true);
  });
});

describe('a host call acts only on the handle of the sandbox it names', () => {
  const exec = ['sh', '-c', 'echo owned > /tmp/pwned'];
  const rows: Array<[string, () => Promise<unknown>]> = [
    [
      'exec in another sandbox’s container',
      () =>
        asWorkflowOf(attacker.sandboxId).run(host().execInSandbox, { ...claim(attacker), containerId: victim.containerId, command: exec }),
    ],
    [
      'exec claiming the other sandbox, from the attacker’s workflow',
      () =>
        asWorkflowOf(attacker.sandboxId).run(host().execInSandbox, { ...claim(victim), containerId: victim.containerId, command: exec }),
    ],
    [
      'exec in its own container under another workspace',
      () =>
        asWorkflowOf(victim.sandboxId).run(host().execInSandbox, {
          sandboxId: victim.sandboxId,
          workspace: 'other',
          containerId: victim.containerId,
          command: exec,
        }),
    ],
    [
      'exec naming no sandbox in a sandbox’s container',
      () => asWorkflowOf(attacker.sandboxId).run(host().execInSandbox, { containerId: victim.containerId, command: exec }),
    ],
    [
      'commit of another sandbox’s container',
      () =>
        asWorkflowOf(attacker.sandboxId).run(host().commitSandbox, {
          ...claim(attacker),
          containerId: victim.containerId,
          repository: `snapflow/sessions/${ws}/x`,
          tag: 'stolen',
        }),
    ],
    [
      'removal of another sandbox’s container',
      () => asWorkflowOf(attacker.sandboxId).run(host().removeSandbox, { ...claim(attacker), containerId: victim.containerId }),
    ],
    [
      'exec in another sandbox’s vm',
      () =>
        asWorkflowOf(attacker.sandboxId).run(host().execInSandbox, { ...claim(attacker), containerId: machine.containerId, command: exec }),
    ],
    [
      'removal of another sandbox’s vm',
      () => asWorkflowOf(attacker.sandboxId).run(host().removeSandbox, { ...claim(attacker), containerId: machine.containerId }),
    ],
    [
      'save of another sandbox’s vm',
      () =>
        asWorkflowOf(attacker.sandboxId).run(host().snapshotVmSandbox, {
          ...claim(attacker),
          containerId: machine.containerId,
          repository: `snapflow/sessions/${ws}/x`,
          tag: 'stolen',
          keepAlive: true,
        }),
    ],
    // A decoy beside this host's run root: a regression removes only it.
    [
      'removal of a directory outside the vm run root',
      () => asWorkflowOf(attacker.sandboxId).run(host().removeSandbox, { ...claim(attacker), containerId: `vm:../${basename(decoy)}` }),
    ],
  ];
  let decoy = '';
  beforeAll(() => {
    decoy = mkdtempSync(join(dirname(vmPlaces(hostId).runRoot), `decoy-${hostId}-`));
    writeFileSync(join(decoy, 'keep'), 'keep');
  });
  afterAll(() => rmSync(decoy, { recursive: true, force: true }));

  test.each(rows)('%s', async (_name, attack) => {
    expect(await refusal(attack())).toMatchObject({ code: 'HANDLE_MISMATCH' });
    expect(existsSync(join(decoy, 'keep'))).toBe(true);
    expect(await running(victim.containerId)).toBe(true);
    expect(
      (await t.client.sandboxes.runJob(victim.sandboxId, { command: ['sh', '-c', 'cat /tmp/pwned 2>/dev/null || echo clean'] })).stdout,
    ).toBe('clean\n');
    expect(await answers(machine)).toBe('still here');
  });

  test('a container snapflow did not make is not a handle', async () => {
    const stranger = await t.docker.createContainer({ Image: BASE_IMAGE_REF, Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none' } });
    try {
      await stranger.start();
      expect(
        await refusal(
          asWorkflowOf(attacker.sandboxId).run(host().execInSandbox, { ...claim(attacker), containerId: stranger.id, command: exec }),
        ),
      ).toMatchObject({
        code: 'HANDLE_MISMATCH',
        message: expect.stringContaining('not made by snapflow'),
      });
    } finally {
      await stranger.remove({ force: true });
    }
  });

  test('the sandbox’s own workflow, naming it, is served (the check is not a wall)', async () => {
    const result = await asWorkflowOf(victim.sandboxId).run(host().execInSandbox, {
      ...claim(victim),
      containerId: victim.containerId,
      command: ['echo', 'mine'],
    });
    expect(result).toMatchObject({ exitCode: 0, stdout: 'mine\n' });
    const vmResult = await asWorkflowOf(machine.sandboxId).run(host().execInSandbox, {
      ...claim(machine),
      containerId: machine.containerId,
      command: ['echo', 'mine'],
    });
    expect(vmResult).toMatchObject({ exitCode: 0, stdout: 'mine\n' });
  });
});

/** The capability bits a confined container keeps, as /proc/self/status prints them (16 hex digits). */
const CAP_NUMBERS: Record<string, number> = { CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, KILL: 5, SETGID: 6, SETUID: 7 };
const expectedCaps = SANDBOX_CAPABILITIES.reduce((mask, cap) => mask | (1n << BigInt(CAP_NUMBERS[cap]!)), 0n)
  .toString(16)
  .padStart(16, '0');
const STATUS_LINES = 'grep -E "^(CapEff|CapBnd|NoNewPrivs)" /proc/self/status';

describe('tenant containers are confined', () => {
  test('a sandbox job sees the reduced capabilities and no new privileges; what was dropped fails', async () => {
    expect(expectedCaps).toBe('00000000000000eb');
    const job = await t.client.sandboxes.runJob(attacker.sandboxId, {
      command: ['sh', '-c', `${STATUS_LINES}; mknod /tmp/disk b 8 0 2>&1; chroot / true 2>&1; true`],
    });
    expect(job.stdout).toContain(`CapEff:\t${expectedCaps}`);
    expect(job.stdout).toContain(`CapBnd:\t${expectedCaps}`);
    expect(job.stdout).toContain('NoNewPrivs:\t1');
    expect(job.stdout).toMatch(/mknod: \/tmp\/disk: Operation not permitted/);
    expect(job.stdout).toMatch(/chroot: .*Operation not permitted/);
    const { HostConfig } = await t.docker.getContainer(attacker.containerId).inspect();
    expect(HostConfig).toMatchObject({
      NetworkMode: 'none',
      Privileged: false,
      CapDrop: ['ALL'],
      PidsLimit: SANDBOX_PIDS_LIMIT,
      Memory: 2048 * 1024 * 1024,
      MemorySwap: 2048 * 1024 * 1024,
      NanoCpus: 1e9,
    });
  });

  test('a boot check runs the image as confined as a sandbox', async () => {
    const image = await deriveImage(t.docker, `printf '#!/bin/sh\\n${STATUS_LINES}\\n' > /app/caps.sh && chmod +x /app/caps.sh`, 'caps');
    const golden = createGoldenHostActivities({ docker: t.docker, hostId, preload: t.config.preload });
    const { output } = (await new MockActivityEnvironment().run(golden.verifyBoot, {
      image,
      entrypoint: '/app/caps.sh',
      size: 'small',
    })) as {
      output: string;
    };
    expect(output).toContain(`CapEff:\t${expectedCaps}`);
    expect(output).toContain('NoNewPrivs:\t1');
  });

  test('a boot check whose entrypoint allocates without bound is killed by the size’s memory and fails typed', async () => {
    const image = await deriveImage(t.docker, `printf '#!/bin/sh\\ntail /dev/zero\\n' > /app/hog.sh && chmod +x /app/hog.sh`, 'hog');
    const golden = createGoldenHostActivities({ docker: t.docker, hostId, preload: t.config.preload });
    const started = Date.now();
    expect(
      await refusal(
        new MockActivityEnvironment().run(golden.verifyBoot, { image, entrypoint: '/app/hog.sh', size: 'small', timeoutSeconds: 300 }),
      ),
    ).toMatchObject({
      code: 'VERIFY_FAILED',
      message: expect.stringContaining('more than its 2048 MiB of memory'),
    });
    console.log(`memory hog boot check refused after ${Date.now() - started} ms`);
    expect(await t.docker.listContainers({ all: true, filters: { ancestor: [image] } })).toEqual([]);
  });

  test('a fork bomb in a job stops at the pids limit and is killed at its timeout; a neighbour keeps answering', async () => {
    const before = Date.now();
    expect(await answers(victim)).toBe('still here');
    const quietMs = Date.now() - before;
    const { sandboxId, status } = await t.client.sandboxes.create({
      workspace: ws,
      class: 'container',
      size: 'small',
      runtime: 'codex',
      keepAlive: true,
    });
    const container = t.docker.getContainer(status.containerId!);
    const pids = async (): Promise<number> =>
      ((await container.stats({ stream: false })) as { pids_stats: { current?: number } }).pids_stats.current ?? 0;
    // Every process forks forever; the shell gives up when a fork fails, or the timeout kills what is left.
    const bomb = t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', 'b() { while :; do b & done; }; b'], timeout: 20_000 }).then(
      (r) => ({ exitCode: r.exitCode, code: undefined as ErrorCode | undefined }),
      (err: unknown) => ({ exitCode: undefined, code: describeFailure(err).code }),
    );
    let peak = 0;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline && peak < SANDBOX_PIDS_LIMIT * 0.9;)
      peak = Math.max(peak, await pids());
    expect(peak).toBeGreaterThanOrEqual(SANDBOX_PIDS_LIMIT * 0.9); // the bomb filled its limit…
    const during = Date.now();
    expect(await answers(victim)).toBe('still here'); // …the neighbour answered meanwhile…
    const busyMs = Date.now() - during;
    expect(Math.max(peak, await pids())).toBeLessThanOrEqual(SANDBOX_PIDS_LIMIT); // …and it never got past it
    console.log(`fork bomb: ${peak} pids (limit ${SANDBOX_PIDS_LIMIT}); neighbour job ${quietMs} ms before, ${busyMs} ms during the bomb`);
    const ended = await bomb;
    expect(ended.code === 'JOB_TIMED_OUT' || (ended.code === undefined && ended.exitCode !== 0)).toBe(true);
    await t.client.sandboxes.destroy(sandboxId);
    expect(await running(status.containerId!)).toBe(false);
  }, 180_000);
});
