// A job printing 30 MB of random bytes and then `tail-mark`, on a container and on a vm sandbox: every byte through
// the log store to the caller, checked by sha256 against the sandbox's own hash of the same bytes. Prints MB/s
// beside the targets (vm ≤ 15 s under TCG, container ≤ 3 s).
//
// The bytes are made once before the timed job (random, every byte value): under TCG a guest generating them
// (urandom, tee) takes longer than moving them, so the timed job only `cat`s them, which is what measures the channel.
import { createHash } from 'node:crypto';
import type { TestEnv } from '../test/support/stack';

const MB = 30;
const FILE = '/tmp/joblog.bin';
const MAKE = `head -c ${MB * 1_000_000} /dev/urandom > ${FILE}`;
const JOB = `cat ${FILE}; printf 'tail-mark\\n'`;
/** Runs per class: the spread is printed, not a mean. */
const RUNS = 3;

export async function benchJobLog(t: TestEnv): Promise<void> {
  for (const sandboxClass of ['container', 'vm'] as const) {
    const { sandboxId } = await t.client.sandboxes.create({
      workspace: 'bench-joblog',
      class: sandboxClass,
      size: 'small',
      runtime: 'codex',
      keepAlive: true,
    });
    try {
      const made = await t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', MAKE], timeout: '10m' });
      if (made.exitCode !== 0) throw new Error(`making the bytes failed: ${made.stderr}`);
      const own = await t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', `(${JOB}) | sha256sum | cut -d' ' -f1`] });
      const target = sandboxClass === 'vm' ? 15 : 3;
      for (let run = 1; run <= RUNS; run++) {
        // A vm saves a session after each job and refuses the next one until it is saved: not what is measured here.
        await t.client.sandboxes.waitWhileSnapshotting(sandboxId);
        const hash = createHash('sha256');
        let bytes = 0;
        const started = Date.now();
        const result = await t.client.sandboxes.runJob(
          sandboxId,
          { command: ['sh', '-c', JOB], timeout: '10m' },
          {
            onOutput: (c) => {
              if (c.stream !== 'stdout') return;
              hash.update(c.data);
              bytes += c.data.length;
            },
          },
        );
        const seconds = (Date.now() - started) / 1000;
        const exact = hash.digest('hex') === own.stdout.trim();
        // The same job with its output thrown away in the sandbox: what reading the bytes costs, without moving them.
        await t.client.sandboxes.waitWhileSnapshotting(sandboxId);
        const quiet = Date.now();
        await t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', `(${JOB}) > /dev/null`], timeout: '10m' });
        const alone = (Date.now() - quiet) / 1000;
        console.log(
          `joblog ${sandboxClass.padEnd(9)} ${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s = ${(bytes / 1e6 / seconds).toFixed(2)} MB/s` +
            ` (target ≤ ${target} s); sha256 ${exact ? 'equal' : 'DIFFERENT'}; exit ${result.exitCode}; tail-mark ${result.stdout.endsWith('tail-mark\n') ? 'kept' : 'LOST'}; the job alone (output to /dev/null) ${alone.toFixed(1)} s`,
        );
      }
    } finally {
      await t.client.sandboxes.destroy(sandboxId).catch(() => undefined);
    }
  }
}
