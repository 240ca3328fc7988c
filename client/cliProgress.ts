// `--wait` progress for workflows that report their step as current details (the line the Temporal UI shows).
import type { SnapflowClient } from './index';

/** Temporal's built-in query for a run's metadata; `currentDetails` is what the workflow last set. */
const METADATA_QUERY = '__temporal_workflow_metadata';

/** Prints each new step of a run (`**preload** 2 repo(s)` → `preload 2 repo(s)`) until `done` settles, and returns it. */
export async function followSteps<T>(
  client: SnapflowClient,
  workflowId: string,
  done: Promise<T>,
  print: (step: string) => void,
): Promise<T> {
  let finished = false;
  const settled = done.finally(() => (finished = true));
  const follow = async (): Promise<void> => {
    const handle = client.temporal.workflow.getHandle(workflowId);
    let last = '';
    while (!finished) {
      const metadata = await handle.query<{ currentDetails?: string | null }>(METADATA_QUERY).catch(() => undefined);
      const step = metadata?.currentDetails?.replace(/\*\*/g, '').trim();
      if (step && step !== last && !finished) print(step);
      last = step || last;
      await Promise.race([settled.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
    }
  };
  const following = follow();
  try {
    return await settled;
  } finally {
    await following;
  }
}
