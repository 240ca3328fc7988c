// How a workflow's refusal or failure reaches a service: as the SnapflowError the workflow typed.
import {
  WorkflowFailedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { SnapflowError, describeFailure } from '../lib/errors';

/**
 * Runs a call to a workflow: a refused or failed Update, or a failed run, becomes its typed error; a workflow that
 * does not exist becomes `notFound(err)`, which names what the caller asked for.
 */
export async function typedCall<T>(work: () => Promise<T>, notFound: (err: Error) => SnapflowError): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (
      err instanceof WorkflowUpdateFailedError ||
      err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
      err instanceof WorkflowFailedError
    )
      throw new SnapflowError(describeFailure(err));
    if (err instanceof WorkflowNotFoundError || (err as Error).name === 'WorkflowNotFoundError') throw notFound(err as Error);
    throw err;
  }
}
