// Every replay branch of every workflow, in one place: each `patched()` decision names what runs recorded before it
// did instead, and the date it can go. A patch can be removed once no run older than it is open and its histories
// have left retention (the date below: 90 days after it shipped); removing one means deleting its false branch.
import { patched } from '@temporalio/workflow';

export const since = {
  /** 2026-12-01 · remove after 2027-03-01. Without it: no authorization step (workflows/authorize.ts and callers). */
  authorization: () => patched('authz-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: host refreshes and self-tests ran without authorizing their actor. */
  hostAuthorization: () => patched('authz-host-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: a golden build did not cache its image snapshot base first. */
  goldenBase: () => patched('golden-base-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: a golden build's vm targets saved no machine. */
  goldenMachine: () => patched('golden-machine-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: the reconciler did not retry interrupted deletes. */
  reconcileDeleting: () => patched('reconcile-deleting-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: `--auto` boot-checked the image instead of running a canary. */
  canaryRun: () => patched('canary-run-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: a sandbox start pulled first instead of on a miss. */
  pullOnMiss: () => patched('pull-on-miss-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: an image snapshot base's entrypoint was not awaited. */
  entrypoint: () => patched('entrypoint-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: no idle timeout, lifetime, resuming job or job timeout. */
  lifecycle: () => patched('lifecycle-v1'),
  /** 2026-12-02 · remove after 2027-03-02. Without it: a `vm` sandbox ran as a container. */
  vmRuntime: () => patched('vm-runtime-v1'),
  /**
   * 2026-12-04 · remove after 2027-03-04. Without it: the sandbox called its runtime by the earlier activity names,
   * the handle as text (workflows/sandboxLegacyRuntime.ts).
   */
  backends: () => patched('sandbox-backends-v1'),
  /** 2026-12-06 · remove after 2027-03-06. Without it: an image snapshot's build never started its entrypoint. */
  imageBootCheck: () => patched('image-boot-check-v1'),
  /** 2026-12-06 · remove after 2027-03-06. Without it: a golden build's vm targets wrote no lines in its log. */
  goldenStepLog: () => patched('golden-step-log-v1'),
  /** 2026-12-06 · remove after 2027-03-06. Without it: the client wrote a sandbox's issue row and passed its id. */
  sandboxIssue: () => patched('sandbox-issue-v1'),
  /**
   * 2026-12-06 · remove after 2027-03-06. Without it: a golden build's vm targets called the machine steps by their
   * earlier names, the handle as text (workflows/goldenMachine.ts).
   */
  goldenVerbs: () => patched('golden-vm-verbs-v1'),
  /** 2026-12-07 · remove after 2027-03-07. Without it: promotion of a stopped sandbox was refused ("resume it first"). */
  stoppedPromote: () => patched('stopped-promote-v1'),
};
