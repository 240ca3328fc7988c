// Which uid a machine's QEMU gets: one of its own from SNAPFLOW_VM_UIDS, never one another machine in the run
// directory holds, and the range's end is a typed refusal, not a shared uid.
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_VM_UIDS, machineUids, machineUser, vmUser } from '../activities/vm/machine';

const setting = process.env.SNAPFLOW_VM_UIDS;
afterEach(() => {
  if (setting === undefined) delete process.env.SNAPFLOW_VM_UIDS;
  else process.env.SNAPFLOW_VM_UIDS = setting;
});

test('SNAPFLOW_VM_UIDS: unset is the default range, shared is none, a range is read, anything else is refused naming it', () => {
  delete process.env.SNAPFLOW_VM_UIDS;
  expect(machineUids()).toEqual(DEFAULT_VM_UIDS);
  process.env.SNAPFLOW_VM_UIDS = 'shared';
  expect(machineUids()).toBeUndefined();
  process.env.SNAPFLOW_VM_UIDS = '3000000-3000009';
  expect(machineUids()).toEqual({ first: 3000000, last: 3000009 });
  for (const bad of ['9-3000000', '3000009-3000000', 'all', '0-10', '3000000-4294967295']) {
    process.env.SNAPFLOW_VM_UIDS = bad;
    expect(() => machineUids()).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', field: 'SNAPFLOW_VM_UIDS' }));
  }
});

// Only a root worker switches users.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;

asRoot('machine uids under a root worker', () => {
  let run: string;
  beforeEach(() => {
    run = mkdtempSync(join(tmpdir(), 'sf-uids-'));
    process.env.SNAPFLOW_VM_UIDS = '3000000-3000002';
  });
  afterEach(() => rmSync(run, { recursive: true, force: true }));

  /** A machine directory whose QEMU directory holds `uid`, as startQemu leaves it. */
  const holding = (name: string, uid: number) => {
    mkdirSync(join(run, name, 'qemu'), { recursive: true });
    chownSync(join(run, name, 'qemu'), uid, vmUser()!.gid);
  };

  test("each machine gets a uid no other machine's directory holds, with the vm user's group; the range's end is refused", () => {
    holding('a', 3000000);
    holding('b', 3000002);
    const { user, release } = machineUser(join(run, 'c'));
    expect(user).toEqual({ ...vmUser(), uid: 3000001 });
    release();
    holding('c', 3000001);
    expect(() => machineUser(join(run, 'd'))).toThrow(expect.objectContaining({ code: 'VM_UNAVAILABLE' }));
    rmSync(join(run, 'a'), { recursive: true });
    const again = machineUser(join(run, 'd'));
    expect(again.user?.uid).toBe(3000000);
    again.release();
  });

  test('a uid handed out but not yet on its directory is not handed out again until released', () => {
    const first = machineUser(join(run, 'x'));
    const second = machineUser(join(run, 'y'));
    const third = machineUser(join(run, 'z'));
    expect(new Set([first.user!.uid, second.user!.uid, third.user!.uid]).size).toBe(3);
    expect(() => machineUser(join(run, 'w'))).toThrow(expect.objectContaining({ code: 'VM_UNAVAILABLE' }));
    second.release();
    const fourth = machineUser(join(run, 'w'));
    expect(fourth.user!.uid).toBe(second.user!.uid);
    fourth.release();
    first.release();
    third.release();
  });

  test('shared: every machine runs as the vm user itself', () => {
    process.env.SNAPFLOW_VM_UIDS = 'shared';
    expect(machineUser(join(run, 'x')).user).toEqual(vmUser());
  });
});
