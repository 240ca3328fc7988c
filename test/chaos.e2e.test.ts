// The essential chaos cases in the suite (all of them, with more runs: `npm run chaos`). Each runs on a stack
// this file owns, so killing Temporal or the host worker never touches other test files. Then, on a second stack,
// writers whose first attempt commits and stalls past its deadline: their retries must tell the truth.
import {
  createRace,
  killHostMidImageSnapshot,
  killHostMidPromote,
  promoteVsJobRace,
  restartPostgresMidGolden,
  restartStorageMidPush,
  restartTemporalMidGolden,
  setDefaultRace,
  type ChaosCase,
} from './chaos/cases';
import { startChaosEnv, type ChaosEnv } from './chaos/env';
import { stallSummary } from './chaos/stalls';
import { killHostMidSessionRestore, killHostMidSessionSave } from './chaos/vmCases';

const cases: Array<[string, ChaosCase, number]> = [
  ['kill -9 of the host worker during an image snapshot', killHostMidImageSnapshot, 1],
  ['kill -9 of the host worker during a promote', killHostMidPromote, 1],
  ['kill -9 of the host worker while a vm saves its session', killHostMidSessionSave, 1],
  ['kill -9 of the host worker while a vm restores its session', killHostMidSessionRestore, 1],
  ['Temporal restarted (same SQLite file) during a golden build', restartTemporalMidGolden, 1],
  ['PostgreSQL restarted during a golden build', restartPostgresMidGolden, 1],
  ['snapshot storage down for 3 s during an upload', restartStorageMidPush, 1],
  ['20 concurrent set-defaults on one size/profile', setDefaultRace, 20],
  ['10 rounds of promote vs job', promoteVsJobRace, 10],
  ['20 concurrent creates of one name', createRace, 20],
];

async function expectClean(env: ChaosEnv, run: ChaosCase, runs: number): Promise<void> {
  const result = await run(env, runs);
  // The vm cases also say how each round ended ("outcomes: …"): a report, not a problem.
  const notes = result.notes.filter((n) => !n.startsWith('outcomes: '));
  expect({ survived: result.survived, orphans: result.orphans, duplicates: result.duplicates, notes }).toEqual({
    survived: runs,
    orphans: 0,
    duplicates: 0,
    notes: [],
  });
}

describe('on a stack that breaks', () => {
  let env: ChaosEnv;
  beforeAll(async () => {
    env = await startChaosEnv();
  }, 180_000);
  afterAll(async () => env?.close(), 120_000);

  test.each(cases)('%s: every run survives, no orphan, no duplicate', async (_name, run, runs) => expectClean(env, run, runs), 240_000);
});

/** Writers whose first attempt commits and then outlives its deadline, so Temporal runs each again. */
const STALLED = ['setDefault', 'vmBoot', 'vmSaveSession', 'saveSessionSnapshot'];

describe('when an activity commits and then stalls past its deadline', () => {
  let env: ChaosEnv;
  beforeAll(async () => {
    env = await startChaosEnv({ stall: STALLED.join(',') });
  }, 180_000);
  afterAll(async () => env?.close(), 120_000);

  test('20 concurrent set-defaults: the retried compare-and-set still makes exactly one winner and one history row', async () => {
    await expectClean(env, setDefaultRace, 20);
  }, 420_000);

  test('a vm sandbox boots, runs a job, saves its session and is promoted, each step retried after its commit', async () => {
    await expectClean(env, promoteVsJobRace, 1);
  }, 420_000);

  test('the writers named were stalled after their commit, and each retry answered what the stalled attempt had', () => {
    const stalled = env.stalls().filter((r) => r.event === 'stalled');
    // A session is saved only when the job won the round, so that writer may not have been reached.
    expect([...new Set(stalled.map((r) => r.type))]).toEqual(expect.arrayContaining(['setDefault', 'vmBoot', 'vmSaveSession']));
    // Each retry answered what its stalled attempt had (a vm save is not saved a second time).
    const summary = stallSummary(env.stalls());
    expect(summary.flatMap((t) => [...t.others, ...t.failed].map((w) => `${t.type} ${w}`))).toEqual([]);
    expect(summary.filter((t) => t.same === 0).map((t) => t.type)).toEqual([]);
  });
});
