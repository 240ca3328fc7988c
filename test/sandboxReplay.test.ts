// Recorded workflow histories (protobuf bytes, as Temporal stores them) replayed against today's workflow code: the
// sandbox entity for container and vm scenarios (create, jobs, sessions, restore, promote, destroy, continue-as-new),
// rollouts and golden builds. A change that makes a workflow non-deterministic for runs already in flight fails
// here, before a deploy. Fixtures are recorded from the e2e tests that call recordHistory (test/support/histories.ts):
//   SNAPFLOW_RECORD_HISTORY=1 bash scripts/test.sh test/sandbox.e2e.test.ts
// Re-record only after a change versioned with patched() (workflows/legacy.ts): old fixtures must keep replaying.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { FIXTURE_DIR, historyFixtures } from './support/histories';
import { readTestStack } from './support/stackState';

const load = (name: string) => temporal.api.history.v1.History.decode(readFileSync(join(FIXTURE_DIR, name)));

test('there are recorded histories of container and vm sandboxes, a rollout and a golden build', () => {
  const types = new Set(historyFixtures().map((f) => load(f).events![0]!.workflowExecutionStartedEventAttributes!.workflowType!.name));
  expect([...types].sort()).toEqual(expect.arrayContaining(['buildGoldenSnapshot', 'rolloutSnapshot', 'sandbox']));
  const classes = new Set(
    historyFixtures()
      .map((f) => load(f).events![0]!.workflowExecutionStartedEventAttributes!)
      .filter((a) => a.workflowType!.name === 'sandbox')
      .map((a) => (JSON.parse(Buffer.from(a.input!.payloads![0]!.data!).toString('utf8')) as { class: string }).class),
  );
  expect([...classes].sort()).toEqual(['container', 'vm']);
});

test.each(historyFixtures())('%s replays without non-determinism', async (name) => {
  const history = load(name);
  expect(history.events?.length).toBeGreaterThan(5);
  await Worker.runReplayHistory({ workflowBundle: { codePath: readTestStack().bundlePath } }, history, name);
});

test('the replayer does fail on a history from other code', async () => {
  const history = load('sandbox-history.pb');
  // The history says the first scheduled activity was another one than the code schedules: non-determinism.
  const scheduled = history.events!.find((e) => e.activityTaskScheduledEventAttributes)!.activityTaskScheduledEventAttributes!;
  scheduled.activityType = { name: 'somethingElse' };
  await expect(
    Worker.runReplayHistory({ workflowBundle: { codePath: readTestStack().bundlePath } }, history, 'sandbox-broken'),
  ).rejects.toThrow(/[Nn]ondeterminism|does not match/);
});
