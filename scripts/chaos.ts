// `npm run chaos`: the chaos cases on a stack this run owns (Temporal, PostgreSQL, dockerd, registries, both
// workers as supervised child processes), then one table: case, runs, survived, orphans, duplicates.
// `npm run chaos -- --quick` runs each case once (the concurrency cases at their full size).
// `--load` runs them while stress-ng saturates the host (a CPU hog per core and an I/O hog); `--stall` (or
// `--stall=setDefault,vmBoot`) makes the first call of every activity type (or every first attempt of the named
// ones) commit and then stall past its deadline, so each is retried after its effect committed; the table below
// the cases says what every retry returned (`--stall=writes`: every type that changes something; the short calls'
// start-to-close is 10 s in this run's bundle, `--stall-timeout=<seconds>` to change it).
import {
  audit,
  createRace,
  killHostMidGolden,
  killHostMidImageSnapshot,
  killHostMidPromote,
  promoteVsJobRace,
  restartDockerdMidGolden,
  restartPostgresMidGolden,
  restartStorageMidPush,
  restartTemporalMidGolden,
  setDefaultRace,
  storageReadOnly,
  type CaseResult,
  type ChaosCase,
} from '../test/chaos/cases';
import { startChaosEnv } from '../test/chaos/env';
import { stallSummary } from '../test/chaos/stalls';
import type { StallRecord } from '../workers/stall';
import { killHostMidSessionRestore, killHostMidSessionSave } from '../test/chaos/vmCases';

const quick = process.argv.includes('--quick');
const load = process.argv.includes('--load');
const stallArg = process.argv.find((a) => a === '--stall' || a.startsWith('--stall='));
const stall = stallArg ? stallArg.replace(/^--stall=?/, '') || '*' : undefined;
// The short calls' 30 s start-to-close, in this run's workflow bundle only, so each of their stalls costs ~12 s.
const stallTimeoutArg = process.argv.find((a) => a.startsWith('--stall-timeout='));
const stallTimeoutMs = stallTimeoutArg ? Number(stallTimeoutArg.split('=')[1]) * 1000 : 10_000;
const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));

const plan: Array<[string, ChaosCase, number]> = [
  ['kill-golden', killHostMidGolden, quick ? 1 : 3],
  ['kill-image', killHostMidImageSnapshot, quick ? 1 : 3],
  ['kill-promote', killHostMidPromote, quick ? 1 : 3],
  ['kill-vm-save', killHostMidSessionSave, quick ? 1 : 3],
  ['kill-vm-restore', killHostMidSessionRestore, quick ? 1 : 3],
  ['temporal', restartTemporalMidGolden, quick ? 1 : 2],
  ['postgres', restartPostgresMidGolden, quick ? 1 : 2],
  ['registry', restartStorageMidPush, quick ? 1 : 2],
  ['dockerd', restartDockerdMidGolden, quick ? 1 : 2],
  ['readonly', storageReadOnly, 1],
  ['set-default', setDefaultRace, quick ? 20 : 100],
  ['promote-race', promoteVsJobRace, 50],
  ['create-race', createRace, 20],
];

function table(rows: CaseResult[]): string {
  const head = ['case', 'runs', 'survived', 'orphans', 'duplicates'];
  const cells = rows.map((r) => [r.name, String(r.runs), String(r.survived), String(r.orphans), String(r.duplicates)]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/**
 * Per activity type: calls stalled after their commit, and what their retries answered. A retry that failed, or
 * answered otherwise than the stalled attempt (canonical JSON, so key order does not count), is a problem; a stall
 * with no retry seen is one whose run ended meanwhile (a killed worker's, or a run that timed out as a whole).
 */
function stallReport(records: StallRecord[]): number {
  const rows = stallSummary(records);
  console.log('\ncommit-then-stall: type, stalled, retried with the same result, with another result, retry failed, retry not seen');
  let problems = 0;
  for (const t of rows) {
    const bad = t.failed.length + t.others.length;
    problems += bad;
    console.log(
      `  ${bad ? '✗' : '✓'} ${t.type}: ${t.stalled}, ${t.same}, ${t.others.length}, ${t.failed.length}, ${t.unseen}${[...t.failed, ...t.others].map((f) => `\n      ${f}`).join('')}`,
    );
  }
  return problems;
}

async function main(): Promise<number> {
  const started = Date.now();
  let stallProblems = 0;
  const env = await startChaosEnv({ load, stall, stallTimeoutMs });
  if (load) console.log(`host saturated: stress-ng (pid ${env.hogs?.pid}) runs a CPU hog per core and an I/O hog`);
  const rows: CaseResult[] = [];
  try {
    for (const [key, run, runs] of plan) {
      if (only.length && !only.includes(key)) continue;
      const t0 = Date.now();
      try {
        rows.push(await run(env, runs));
      } catch (err) {
        const { orphans, duplicates } = await audit(env);
        rows.push({
          name: key,
          runs,
          survived: 0,
          orphans: orphans.length,
          duplicates: duplicates.length,
          notes: [`case crashed: ${(err as Error).message}`, ...orphans, ...duplicates],
        });
      }
      const r = rows[rows.length - 1]!;
      console.log(
        `${r.survived === r.runs && !r.orphans && !r.duplicates ? '✓' : '✗'} ${r.name} (${((Date.now() - t0) / 1000).toFixed(0)} s)${r.notes.map((n) => `\n    ${n}`).join('')}`,
      );
    }
    console.log(`\nworker restarts by the supervisor: control ${env.workers.control.restarts}, host ${env.workers.host.restarts}`);
    if (stall) stallProblems = stallReport(env.stalls());
  } finally {
    await env.close();
  }
  console.log(`\n${table(rows)}\n\n${((Date.now() - started) / 1000).toFixed(0)} s`);
  const stallMode = stall && `stall ${stall} (short calls: ${stallTimeoutMs / 1000} s start-to-close)`;
  console.log(`mode: ${[load && 'load', stallMode].filter(Boolean).join(', ') || 'normal'}`);
  return rows.every((r) => r.survived === r.runs && r.orphans === 0 && r.duplicates === 0) && stallProblems === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
