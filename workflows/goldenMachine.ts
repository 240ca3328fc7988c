// A golden build's vm target: the built image booted as a machine on the builder and that machine saved into snapshot
// storage, through the vm backend's verbs (workflows/backends.ts), as a sandbox's are. Runs recorded before that
// called the machine steps by their earlier names (startVmSandbox, snapshotVmSandbox, removeSandbox): kept below
// for them, behind `since.goldenVerbs` (workflows/legacy.ts).
import { CancellationScope, setCurrentDetails } from '@temporalio/workflow';
import type { SavedSession } from '../activities/sandbox/backend';
import { handleText, parseHandleText, type SandboxHandle } from '../lib/sandboxHandle';
import { hostActivities, hostVmActivities } from './activities';
import { backendOn } from './backends';
import { since } from './legacy';

/** What the machine is made from, and where. */
export interface MachineTarget {
  hostId: string;
  workflowId: string;
  workspace: string;
  buildId: string;
  size: string;
  /** The committed image on the builder. */
  image: string;
  /** The base's long-lived process, started in the guest and checked after `settleSeconds`. */
  entrypoint?: string;
  settleSeconds: number;
}

/** A line at place `at` of the step in the build's log. */
export type StepNote = (at: number, line: string) => Promise<void>;

interface MachineSteps {
  boot(): Promise<{ handle: SandboxHandle; bootMs: number }>;
  save(
    handle: SandboxHandle,
    to: { repository: string; tag: string },
  ): Promise<Pick<SavedSession, 'storedRef' | 'digest' | 'machineProfile'>>;
  remove(handle: SandboxHandle): Promise<void>;
}

/** Boots the committed image as a vm of the target's size, saves that machine into storage, and removes the vm. */
export async function saveMachine(
  m: MachineTarget,
  note: StepNote,
): Promise<{ storedRef: string; digest: string; machineProfile: string }> {
  setCurrentDetails(`**vm** ${m.size}: boot the built image and save the machine`);
  const steps = since.goldenVerbs() ? backendSteps(m) : recordedSteps(m);
  const booted = await steps.boot();
  await note(1, `booted in ${(booted.bootMs / 1000).toFixed(1)} s`);
  try {
    const saved = await steps.save(booted.handle, {
      repository: `snapflow/golden/${m.workspace}`,
      tag: `build-${m.buildId.slice(0, 8)}-${m.size}`,
    });
    await note(2, `saved as ${saved.storedRef} (machine profile ${saved.machineProfile})`);
    return { storedRef: saved.storedRef!, digest: saved.digest!, machineProfile: saved.machineProfile! };
  } finally {
    await CancellationScope.nonCancellable(() => steps.remove(booted.handle));
  }
}

/** Stable per build and size: a retried boot finds the machine it booted. */
const machineKey = (m: MachineTarget) => `golden-${m.buildId.slice(0, 8)}-${m.size}`;

/** The vm backend's verbs. The machine is the build's own (no sandbox claims it): the host checks it is this run's. */
function backendSteps(m: MachineTarget): MachineSteps {
  const vm = backendOn('vm', m.hostId, m.size);
  return {
    async boot() {
      const started = new Date().getTime(); // workflow time: the boot as the build waited for it
      const { key, image, size, workflowId, entrypoint, settleSeconds } = { key: machineKey(m), ...m };
      const handle = await vm.boot({ key, image, size, workflowId, entrypoint, settleSeconds });
      return { handle, bootMs: new Date().getTime() - started };
    },
    save: (handle, to) => vm.saveSession({ handle, ...to, keepRunning: false, requireStorage: true }),
    remove: (handle) => vm.stop({ handle }),
  };
}

/** The machine steps by the names runs recorded before the verbs call, the handle as text. */
function recordedSteps(m: MachineTarget): MachineSteps {
  const vm = hostVmActivities(m.hostId, m.size);
  return {
    async boot() {
      const { key, image, size, workflowId, entrypoint, settleSeconds } = { key: machineKey(m), ...m };
      const booted = await vm.startVmSandbox({ key, image, size, workflowId, entrypoint, settleSeconds });
      return { handle: parseHandleText(booted.containerId), bootMs: booted.bootMs };
    },
    save: (handle, to) => vm.snapshotVmSandbox({ containerId: handleText(handle), ...to, keepAlive: false, requireStorage: true }),
    remove: (handle) => hostActivities(m.hostId).removeSandbox({ containerId: handleText(handle) }),
  };
}
