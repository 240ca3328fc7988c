// A host call acts only on a sandbox handle (a container, a vm) made for whoever asks. The handle records who it was
// made for (a container's labels, a VM's owner file); the call names the sandbox and workspace it means, and Temporal
// says which workflow scheduled it. Anything that does not line up fails HANDLE_MISMATCH, never retried.
import { Context } from '@temporalio/activity';
import { workflowIds } from '../lib/ids';
import { fail } from './boundary';

/** What a host call says it acts for: a sandbox (its id and workspace), or nothing for a build's or a check's own handle. */
export interface HandleClaim {
  sandboxId?: string;
  workspace?: string;
}

/** What the host knows about a handle, from the handle itself. */
export interface HandleRecord {
  /** How a message names it, e.g. `container 3f2a9c0d1e4b`. */
  what: string;
  /** The workflow that made it. */
  workflowId?: string;
  /** Recorded when it was made (containers); absent for a VM and for containers made before sandboxes were labelled. */
  sandbox?: { sandboxId: string; workspace: string };
}

const HINT = 'a host call acts only on the sandbox it names, from that sandbox’s own workflow';

export function checkHandle(handle: HandleRecord, claim: HandleClaim): void {
  const caller = Context.current().info.workflowExecution?.workflowId;
  const named = claim.sandboxId ? `sandbox ${claim.sandboxId.slice(0, 64)}` : 'this run';
  if (claim.sandboxId !== undefined && caller !== workflowIds.sandbox(claim.sandboxId))
    fail('HANDLE_MISMATCH', `a call for ${named} came from another workflow`, HINT);
  if (!caller || handle.workflowId !== caller) fail('HANDLE_MISMATCH', `${handle.what} does not belong to ${named}`, HINT);
  const recorded = handle.sandbox;
  if (recorded && (recorded.sandboxId !== (claim.sandboxId ?? '') || recorded.workspace !== (claim.workspace ?? '')))
    fail(
      'HANDLE_MISMATCH',
      `${handle.what} does not belong to ${named}${claim.workspace ? ` of workspace ${claim.workspace.slice(0, 64)}` : ''}`,
      HINT,
    );
}
