// `npm run chaos`: the chaos cases on a stack this run owns (Temporal, PostgreSQL, dockerd, registries, both
// workers as supervised child processes), then one table: case, runs, survived, orphans, duplicates.
// `npm run chaos -- --quick` runs each case once (the concurrency cases at their full size).
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
import { killHostMidSessionRestore, killHostMidSessionSave } from '../test/chaos/vmCases';

const quick = process.argv.includes('--quick');
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
  ['set-default', setDefaultRace, 20],
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

async function main(): Promise<number> {
  const started = Date.now();
  const env = await startChaosEnv();
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
  } finally {
    await env.close();
  }
  console.log(`\n${table(rows)}\n\n${((Date.now() - started) / 1000).toFixed(0)} s`);
  return rows.every((r) => r.survived === r.runs && r.orphans === 0 && r.duplicates === 0) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
