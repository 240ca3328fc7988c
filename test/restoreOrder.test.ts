// The restore order as a table: one row per path and per reason a step is passed over. Pure, so no stack.
import { BASE_IMAGE_REF, profileKey } from '../lib/presets';
import { SYSTEM_SCOPE } from '../lib/ids';
import {
  SKIP_REASONS,
  chooseRestore,
  type RestoreCandidate,
  type RestoreDecision,
  type RestoreInput,
  type RestoreSandbox,
  type SkipReason,
} from '../lib/restoreOrder';

const profile = profileKey({ runtime: 'codex', size: 'small' });
const otherProfile = profileKey({ runtime: 'pi', size: 'small' });

const M512 = 'qemu-7.2.0/pc-i440fx-7.2/tcg/512m/1cpu/6.1.0-cloud-amd64';
const M1024 = 'qemu-7.2.0/pc-i440fx-7.2/tcg/1024m/1cpu/6.1.0-cloud-amd64';

function sandbox(overrides: Partial<RestoreSandbox> = {}): RestoreSandbox {
  return {
    id: 'sb-1',
    workspace: 'ws-1',
    class: 'vm',
    size: 'small',
    profileKey: profile,
    keepAlive: false,
    state: 'stopped',
    hostId: 'host-a',
    hostStatus: 'online',
    containerId: null,
    issueId: 'issue-1',
    ...overrides,
  };
}

function snap(id: string, overrides: Partial<RestoreCandidate> = {}): RestoreCandidate {
  return {
    id,
    workspace: 'ws-1',
    name: id,
    kind: 'golden',
    status: 'active',
    profileKey: profile,
    storedRef: `registry.test/snapflow/${id}@sha256:${'a'.repeat(64)}`,
    sourceImage: null,
    cachedOn: [],
    ...overrides,
  };
}

const session = (overrides: Partial<RestoreCandidate> = {}) => snap('session-1', { kind: 'session', ...overrides });
const pin = (overrides: Partial<RestoreCandidate> = {}) => snap('pin-1', overrides);
const wsDefault = (overrides: Partial<RestoreCandidate> = {}) => snap('ws-default-1', overrides);
const sysDefault = (overrides: Partial<RestoreCandidate> = {}) => snap('sys-default-1', { workspace: SYSTEM_SCOPE, ...overrides });
const notStored = { storedRef: null, sourceImage: 'snapflow/session-local:1' };

function input(overrides: Partial<RestoreInput> = {}): RestoreInput {
  return { sandbox: sandbox(), session: null, pin: null, workspaceDefault: null, systemDefault: null, ...overrides };
}

interface Row {
  name: string;
  input: RestoreInput;
  source: RestoreDecision['source'];
  snapshotId?: string;
  hostId?: string;
  imageRef?: string;
  /** `step:reason` for every skipped step, in order. */
  skipped: string[];
}

const nothingBeforeSession = ['running:keep-alive-off'];
const noGoldens = ['golden-pin:no-pin', 'golden-workspace:no-workspace-default', 'golden-system:no-system-default'];

const rows: Row[] = [
  // 1. Running keep-alive sandbox
  {
    name: 'keep-alive idle sandbox with a live container is reused on its host',
    input: input({ sandbox: sandbox({ keepAlive: true, state: 'idle', containerId: 'c1' }), session: session() }),
    source: 'running',
    hostId: 'host-a',
    skipped: [],
  },
  {
    name: 'keep-alive busy sandbox is reused too (the job queues on it)',
    input: input({ sandbox: sandbox({ keepAlive: true, state: 'busy', containerId: 'c1' }) }),
    source: 'running',
    hostId: 'host-a',
    skipped: [],
  },
  {
    name: 'a running keep-alive sandbox wins even when another host is asked for',
    input: input({ hostId: 'host-b', sandbox: sandbox({ keepAlive: true, state: 'idle', containerId: 'c1' }) }),
    source: 'running',
    hostId: 'host-a',
    skipped: [],
  },
  {
    name: 'keep-alive off: running sandbox is not reused',
    input: input({ sandbox: sandbox({ state: 'idle', containerId: 'c1' }), session: session() }),
    source: 'session',
    snapshotId: 'session-1',
    skipped: ['running:keep-alive-off'],
  },
  {
    name: 'keep-alive on but stopped',
    input: input({ sandbox: sandbox({ keepAlive: true, state: 'stopped' }), session: session() }),
    source: 'session',
    skipped: ['running:not-running'],
  },
  {
    name: 'keep-alive on but failed',
    input: input({ sandbox: sandbox({ keepAlive: true, state: 'failed', containerId: 'c1' }), session: session() }),
    source: 'session',
    skipped: ['running:not-running'],
  },
  {
    name: 'keep-alive on, idle, but no container on record',
    input: input({ sandbox: sandbox({ keepAlive: true, state: 'idle' }), session: session() }),
    source: 'session',
    skipped: ['running:no-container'],
  },
  {
    name: 'keep-alive on, idle, but its host is offline',
    input: input({ sandbox: sandbox({ keepAlive: true, state: 'idle', containerId: 'c1', hostStatus: 'offline' }), session: session() }),
    source: 'session',
    hostId: undefined,
    skipped: ['running:host-offline'],
  },

  // 2. Latest session snapshot
  {
    name: 'session snapshot in storage resumes on the sandbox host',
    input: input({ session: session(), pin: pin() }),
    source: 'session',
    snapshotId: 'session-1',
    hostId: 'host-a',
    imageRef: session().storedRef!,
    skipped: nothingBeforeSession,
  },
  {
    name: 'container sandbox skips every snapshot step and starts from base',
    input: input({
      sandbox: sandbox({ class: 'container' }),
      session: session(),
      pin: pin(),
      workspaceDefault: wsDefault(),
      systemDefault: sysDefault(),
    }),
    source: 'base',
    imageRef: BASE_IMAGE_REF,
    hostId: 'host-a',
    skipped: [
      ...nothingBeforeSession,
      'session:container-class',
      'golden-pin:container-class',
      'golden-workspace:container-class',
      'golden-system:container-class',
    ],
  },
  {
    name: 'no session snapshot yet',
    input: input({ pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot'],
  },
  {
    name: 'session built for another profile is incompatible',
    input: input({ session: session({ profileKey: otherProfile }), pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:incompatible-profile'],
  },
  {
    name: 'session made on another base image (its agent moved to a new snapshot) is base-changed',
    input: input({
      sandbox: sandbox({ profileKey: profileKey({ runtime: 'codex', size: 'small', baseDigest: `sha256:${'b'.repeat(64)}` }) }),
      session: session({ profileKey: profileKey({ runtime: 'codex', size: 'small', baseDigest: `sha256:${'a'.repeat(64)}` }) }),
      base: {
        snapshotId: 'agent-v2',
        name: 'agent-v2',
        storedRef: `r/agent@sha256:${'b'.repeat(64)}`,
        entrypoint: '/app/start.sh',
        agent: 'bot',
      },
    }),
    source: 'base',
    imageRef: `r/agent@sha256:${'b'.repeat(64)}`,
    skipped: [
      ...nothingBeforeSession,
      'session:base-changed',
      'golden-pin:no-pin',
      'golden-workspace:no-workspace-default',
      'golden-system:no-system-default',
    ],
  },
  {
    name: 'saved machine restores on a host of its machine profile, preferring one that holds a copy',
    input: input({
      sandbox: sandbox({ machines: { 'host-a': M512, 'host-b': M512, 'host-c': M1024 } }),
      session: session({ machineProfile: M512, cachedOn: ['host-b'] }),
    }),
    source: 'session',
    snapshotId: 'session-1',
    hostId: 'host-b',
    skipped: [...nothingBeforeSession],
  },
  {
    name: 'saved machine with no host of its machine profile is machine-changed, naming the part',
    input: input({ sandbox: sandbox({ machines: { 'host-a': M1024 } }), session: session({ machineProfile: M512 }), pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:machine-changed'],
  },
  {
    name: 'failed session snapshot',
    input: input({ session: session({ status: 'failed' }), pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:not-active'],
  },
  {
    name: 'deleted session snapshot',
    input: input({ session: session({ status: 'deleted' }), pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:not-active'],
  },
  {
    name: 'session missing from storage and not cached anywhere',
    input: input({ session: session(notStored), pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:not-available'],
  },
  {
    name: 'session not stored but cached on the chosen host resumes there',
    input: input({ hostId: 'host-b', session: session({ ...notStored, cachedOn: ['host-b'] }) }),
    source: 'session',
    hostId: 'host-b',
    imageRef: notStored.sourceImage,
    skipped: nothingBeforeSession,
  },
  {
    name: 'session not stored and cached only on another host than the chosen one',
    input: input({ hostId: 'host-b', session: session({ ...notStored, cachedOn: ['host-c'] }), pin: pin() }),
    source: 'golden-pin',
    hostId: 'host-b',
    skipped: [...nothingBeforeSession, 'session:not-available'],
  },
  {
    name: 'no host chosen: a cached copy on the sandbox host is preferred',
    input: input({ session: session({ ...notStored, cachedOn: ['host-0', 'host-a'] }) }),
    source: 'session',
    hostId: 'host-a',
    skipped: nothingBeforeSession,
  },
  {
    name: 'no host chosen, sandbox host offline: any host holding a copy',
    input: input({ sandbox: sandbox({ hostStatus: 'offline' }), session: session({ ...notStored, cachedOn: ['host-c'] }) }),
    source: 'session',
    hostId: 'host-c',
    skipped: nothingBeforeSession,
  },
  {
    name: 'stored and cached elsewhere: the cached host saves a pull',
    input: input({ sandbox: sandbox({ hostId: null, hostStatus: null }), session: session({ cachedOn: ['host-c'] }) }),
    source: 'session',
    hostId: 'host-c',
    skipped: nothingBeforeSession,
  },
  {
    name: 'latest session pointer at a non-session snapshot',
    input: input({ session: session({ kind: 'image' }), pin: pin() }),
    source: 'golden-pin',
    skipped: [...nothingBeforeSession, 'session:wrong-kind'],
  },

  // 3. Golden: pin → workspace default → system default
  {
    name: 'pinned golden snapshot',
    input: input({ pin: pin(), workspaceDefault: wsDefault() }),
    source: 'golden-pin',
    snapshotId: 'pin-1',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot'],
  },
  {
    name: 'a system golden snapshot may be pinned',
    input: input({ pin: pin({ workspace: SYSTEM_SCOPE }) }),
    source: 'golden-pin',
    snapshotId: 'pin-1',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot'],
  },
  {
    name: 'sandbox without an issue has no pin',
    input: input({ sandbox: sandbox({ issueId: null }), workspaceDefault: wsDefault() }),
    source: 'golden-workspace',
    snapshotId: 'ws-default-1',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:no-pin'],
  },
  {
    name: 'pinned but incompatible falls through to the workspace default',
    input: input({ pin: pin({ profileKey: otherProfile }), workspaceDefault: wsDefault() }),
    source: 'golden-workspace',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:pin-incompatible'],
  },
  {
    name: 'pinned snapshot of another workspace',
    input: input({ pin: pin({ workspace: 'ws-2' }), workspaceDefault: wsDefault() }),
    source: 'golden-workspace',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:wrong-workspace'],
  },
  {
    name: 'pinned image snapshot is not golden',
    input: input({ pin: pin({ kind: 'image' }), workspaceDefault: wsDefault() }),
    source: 'golden-workspace',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:wrong-kind'],
  },
  {
    name: 'pinned snapshot being deleted',
    input: input({ pin: pin({ status: 'deleting' }), workspaceDefault: wsDefault() }),
    source: 'golden-workspace',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:not-active'],
  },
  {
    name: 'workspace default',
    input: input({ workspaceDefault: wsDefault(), systemDefault: sysDefault() }),
    source: 'golden-workspace',
    snapshotId: 'ws-default-1',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:no-pin'],
  },
  {
    name: 'pending workspace default falls through to the system default',
    input: input({ workspaceDefault: wsDefault({ status: 'pending' }), systemDefault: sysDefault() }),
    source: 'golden-system',
    snapshotId: 'sys-default-1',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:no-pin', 'golden-workspace:not-active'],
  },
  {
    name: 'workspace default built for another profile',
    input: input({ workspaceDefault: wsDefault({ profileKey: otherProfile }), systemDefault: sysDefault() }),
    source: 'golden-system',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', 'golden-pin:no-pin', 'golden-workspace:incompatible-profile'],
  },
  {
    name: 'no workspace default: system default',
    input: input({ systemDefault: sysDefault() }),
    source: 'golden-system',
    snapshotId: 'sys-default-1',
    imageRef: sysDefault().storedRef!,
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', ...noGoldens.slice(0, 2)],
  },
  {
    name: 'a workspace snapshot in the system default slot',
    input: input({ systemDefault: sysDefault({ workspace: 'ws-1' }) }),
    source: 'base',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', ...noGoldens.slice(0, 2), 'golden-system:wrong-workspace'],
  },

  // 4. Fresh base image
  {
    name: 'nothing at all: base image on the sandbox host',
    input: input(),
    source: 'base',
    imageRef: BASE_IMAGE_REF,
    hostId: 'host-a',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', ...noGoldens],
  },
  {
    name: 'base image on the chosen host',
    input: input({ hostId: 'host-b' }),
    source: 'base',
    hostId: 'host-b',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', ...noGoldens],
  },
  {
    name: 'system default unavailable on the chosen host: base image',
    input: input({ hostId: 'host-b', systemDefault: sysDefault({ storedRef: null, cachedOn: ['host-a'] }) }),
    source: 'base',
    skipped: [...nothingBeforeSession, 'session:no-session-snapshot', ...noGoldens.slice(0, 2), 'golden-system:not-available'],
  },
  {
    name: 'every step skipped for a different reason',
    input: input({
      sandbox: sandbox({ keepAlive: true, state: 'provisioning' }),
      session: session({ status: 'failed' }),
      pin: pin({ profileKey: otherProfile }),
      workspaceDefault: wsDefault({ storedRef: null }),
      systemDefault: sysDefault({ status: 'deleted' }),
    }),
    source: 'base',
    imageRef: BASE_IMAGE_REF,
    skipped: [
      'running:not-running',
      'session:not-active',
      'golden-pin:pin-incompatible',
      'golden-workspace:not-available',
      'golden-system:not-active',
    ],
  },
];

describe('chooseRestore', () => {
  test.each(rows)('$name', (row) => {
    const decision = chooseRestore(row.input);
    expect(decision.skipped.map((s) => `${s.step}:${s.reason}`)).toEqual(row.skipped);
    expect(decision.source).toBe(row.source);
    if ('snapshotId' in row) expect(decision).toHaveProperty('snapshotId', row.snapshotId);
    if ('hostId' in row) expect(decision.hostId).toBe(row.hostId);
    if (row.imageRef !== undefined) expect(decision).toHaveProperty('imageRef', row.imageRef);
    for (const s of decision.skipped) expect(s.detail.length).toBeGreaterThan(10);
  });

  test('machine-changed names what differs between the saved machine and the host', () => {
    const decision = chooseRestore(
      input({ sandbox: sandbox({ machines: { 'host-a': M1024 } }), session: session({ machineProfile: M512 }) }),
    );
    expect(decision.skipped.find((s) => s.step === 'session')?.detail).toContain('RAM 512m (host: 1024m)');
  });

  test('the table covers every skip reason', () => {
    const seen = new Set(rows.flatMap((r) => chooseRestore(r.input).skipped.map((s) => s.reason)));
    expect([...SKIP_REASONS].filter((r: SkipReason) => !seen.has(r))).toEqual([]);
  });

  test('a running sandbox names its container, not an image', () => {
    const decision = chooseRestore(input({ sandbox: sandbox({ keepAlive: true, state: 'idle', containerId: 'c-42' }) }));
    expect(decision).toEqual({ source: 'running', hostId: 'host-a', containerId: 'c-42', skipped: [] });
  });

  test('details say what was wrong in words', () => {
    const decision = chooseRestore(input({ session: session({ profileKey: otherProfile }), pin: pin({ status: 'failed' }) }));
    expect(decision.skipped.map((s) => s.detail)).toEqual([
      'sandbox sb-1 does not have keep-alive on',
      `session snapshot session-1 (session-1) was built for ${otherProfile}; the sandbox runs ${profile}`,
      'golden snapshot pin-1 (pin-1) is failed',
      'ws-1 has no default for small codex/small/base-1',
      'there is no system default for small codex/small/base-1',
    ]);
  });

  test('deterministic on plain data: a JSON round trip (as through a workflow) decides the same', () => {
    for (const row of rows) {
      const copy = JSON.parse(JSON.stringify(row.input)) as RestoreInput;
      expect(chooseRestore(copy)).toEqual(chooseRestore(row.input));
    }
  });
});

describe('forks', () => {
  const forkPoint = session({ id: 'fork-point', name: 'session-src-fork-1', sandboxId: 'sb-src' });

  test("a vm fork's first start is its source's session, and it says it was forked from it", () => {
    const d = chooseRestore(input({ session: forkPoint }));
    expect(d).toMatchObject({
      source: 'session',
      snapshotId: 'fork-point',
      forkedFrom: { sandboxId: 'sb-src', name: 'session-src-fork-1' },
    });
  });

  test("a vm sandbox's own session says nothing about forks", () => {
    expect(chooseRestore(input({ session: session({ sandboxId: 'sb-1' }) }))).not.toHaveProperty('forkedFrom');
  });

  test('a container fork starts from its fork point; the other snapshot steps stay skipped as container-class', () => {
    const d = chooseRestore(input({ sandbox: sandbox({ class: 'container' }), fork: forkPoint, pin: pin() }));
    expect(d).toMatchObject({ source: 'session', snapshotId: 'fork-point', forkedFrom: { sandboxId: 'sb-src' } });
  });

  test('a container fork whose fork point is gone starts from the base, saying why', () => {
    const d = chooseRestore(input({ sandbox: sandbox({ class: 'container' }), fork: { ...forkPoint, ...notStored } }));
    expect(d.source).toBe('base');
    expect(d.skipped.map((s) => `${s.step}:${s.reason}`)).toEqual([
      'running:keep-alive-off',
      'session:not-available',
      'golden-pin:container-class',
      'golden-workspace:container-class',
      'golden-system:container-class',
    ]);
  });
});
