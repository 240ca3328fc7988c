// The log cap at its real size: a container job printing 2 GiB of numbered lines under the default 1 GiB cap. The
// log must hold the first 1 GiB as printed, the exact cut note and the true last 64 KiB (checked byte by byte as the
// log streams back, never held in memory). Prints how long the job and the read took. Too long for CI, where
// test/jobLogCap.e2e.test.ts checks the same at 64 MiB under 16 MiB.
import { DEFAULT_LOG_CAP_BYTES, TAIL_BYTES } from '../activities/jobLog';
import { checkCutLog, numberedJob } from '../test/support/numberedLog';
import type { TestEnv } from '../test/support/stack';

const GiB = 1024 ** 3;

export async function benchJobLogCap(t: TestEnv): Promise<void> {
  const cap = DEFAULT_LOG_CAP_BYTES;
  const job = numberedJob(2 * GiB);
  const { sandboxId } = await t.client.sandboxes.create({
    workspace: 'bench-joblogcap',
    class: 'container',
    size: 'small',
    runtime: 'codex',
    keepAlive: true,
  });
  try {
    const started = Date.now();
    const result = await t.client.sandboxes.runJob(sandboxId, { command: job.command, timeout: '30m' });
    const ran = (Date.now() - started) / 1000;
    const reading = Date.now();
    const check = await checkCutLog(t.client.sandboxes.logs(sandboxId), job, cap, TAIL_BYTES);
    const read = (Date.now() - reading) / 1000;
    const dropped = job.total - cap - TAIL_BYTES;
    const note = `\n…[log cut at byte ${cap} of ${job.total}: ${dropped} bytes dropped; the last ${TAIL_BYTES} bytes follow]\n`;
    const figures = result.log?.bytes === job.total && result.log.cutAt === cap && result.log.dropped === dropped;
    const exact = check.kept === cap + TAIL_BYTES && check.matched === check.kept && check.firstMismatch === undefined;
    const noted = check.notes === note && check.notesAt.length === 1 && check.notesAt[0] === cap;
    console.log(
      `joblogcap ${(job.total / GiB).toFixed(2)} GiB printed, cap ${(cap / GiB).toFixed(0)} GiB: job ${ran.toFixed(1)} s ` +
        `(${(job.total / 1e6 / ran).toFixed(0)} MB/s), log read back in ${read.toFixed(1)} s; exit ${result.exitCode}; ` +
        `figures ${figures ? 'exact' : `WRONG ${JSON.stringify(result.log)}`}; kept bytes ${exact ? 'all in place' : `WRONG ${JSON.stringify({ ...check, notes: undefined })}`}; ` +
        `cut note ${noted ? 'exact, at the cut' : `WRONG ${JSON.stringify(check.notes)} at ${check.notesAt.join(',')}`}`,
    );
    if (!figures || !exact || !noted || result.exitCode !== 0) process.exitCode = 1;
  } finally {
    await t.client.sandboxes.destroy(sandboxId).catch(() => undefined);
  }
}
