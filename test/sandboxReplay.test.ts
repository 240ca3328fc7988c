// A recorded sandbox history (protobuf bytes, as Temporal stores it) (jobs, then continue-as-new) replayed against today's workflow code. A change
// that makes the sandbox workflow non-deterministic for runs already in flight fails here, before a deploy.
// Re-record after an intended, versioned change: SNAPFLOW_RECORD_HISTORY=1 npm test -- test/sandbox.e2e.test.ts
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { readTestStack } from './support/stackState';

test('the recorded sandbox history replays without non-determinism', async () => {
  const history = temporal.api.history.v1.History.decode(readFileSync(join(__dirname, 'fixtures', 'sandbox-history.pb')));
  expect(history.events?.length).toBeGreaterThan(20);
  await Worker.runReplayHistory({ workflowBundle: { codePath: readTestStack().bundlePath } }, history, 'sandbox-fixture');
});

test('the replayer does fail on a history from other code', async () => {
  const history = temporal.api.history.v1.History.decode(readFileSync(join(__dirname, 'fixtures', 'sandbox-history.pb')));
  // The history says the first scheduled activity was another one than the code schedules: non-determinism.
  const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!;
  scheduled.activityType = { name: 'somethingElse' };
  await expect(
    Worker.runReplayHistory({ workflowBundle: { codePath: readTestStack().bundlePath } }, history, 'sandbox-broken'),
  ).rejects.toThrow(/[Nn]ondeterminism|does not match/);
});
