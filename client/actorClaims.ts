// The trusted direct client vouches for its actor: every workflow it starts and every Update it sends carries a claim
// signed with SNAPFLOW_ACTOR_KEY for that actor, workspace and run (lib/actorClaim.ts), added here in one place as the
// request leaves, so no call can forget it. The API is such a client, acting as the user its token names.
import type { ClientInterceptors, WorkflowClientInterceptor } from '@temporalio/client';
import { signClaim } from '../lib/actorClaim';

/** A request object that names an actor gets a claim for it; anything else passes unchanged. */
function withClaim(key: Buffer, args: readonly unknown[], workflowId: string): unknown[] {
  const [first, ...rest] = args;
  if (typeof first !== 'object' || first === null || Array.isArray(first)) return [...args];
  const request = first as { actor?: unknown; workspace?: unknown };
  if (typeof request.actor !== 'string') return [...args];
  const workspace = typeof request.workspace === 'string' ? request.workspace : undefined;
  return [{ ...request, claim: signClaim(key, { actor: request.actor, workspace, workflowId }) }, ...rest];
}

export function claimInterceptors(key: Buffer | undefined): ClientInterceptors {
  if (!key) return {};
  const workflow: WorkflowClientInterceptor = {
    start: (input, next) =>
      next({ ...input, options: { ...input.options, args: withClaim(key, input.options.args, input.options.workflowId) } }),
    startWithDetails: (input, next) =>
      next({ ...input, options: { ...input.options, args: withClaim(key, input.options.args, input.options.workflowId) } }),
    signalWithStart: (input, next) =>
      next({ ...input, options: { ...input.options, args: withClaim(key, input.options.args, input.options.workflowId) } }),
    startUpdate: (input, next) => next({ ...input, args: withClaim(key, input.args, input.workflowExecution.workflowId) }),
    startUpdateWithStart: (input, next) => {
      const workflowId = input.workflowStartOptions.workflowId;
      return next({
        ...input,
        workflowStartOptions: { ...input.workflowStartOptions, args: withClaim(key, input.workflowStartOptions.args, workflowId) },
        updateArgs: withClaim(key, input.updateArgs, workflowId),
      });
    },
  };
  return { workflow: [workflow] };
}
