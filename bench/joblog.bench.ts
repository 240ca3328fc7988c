// A job printing 30 MB of random bytes and then `tail-mark`, on a container and on a vm sandbox: every byte through
// the log store to the caller, checked by sha256 against the job's own copy. Prints MB/s beside the targets
// (vm ≤ 15 s under TCG, container ≤ 3 s).
import { createHash } from 'node:crypto';
import type { TestEnv } from '../test/support/stack';

const MB = 30;
/** 30 × 1 MiB-ish blocks of random bytes, a copy kept in the sandbox, then the mark. */
const JOB = `head -c ${MB * 1_000_000} /dev/urandom | tee /tmp/joblog.bin; printf 'tail-mark\\n' | tee -a /tmp/joblog.bin`;

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
      const own = await t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', "sha256sum /tmp/joblog.bin | cut -d' ' -f1"] });
      const exact = hash.digest('hex') === own.stdout.trim();
      const target = sandboxClass === 'vm' ? 15 : 3;
      // The same job with its output thrown away in the sandbox: what making the bytes costs, without moving them.
      const quiet = Date.now();
      await t.client.sandboxes.runJob(sandboxId, { command: ['sh', '-c', `(${JOB}) > /dev/null`], timeout: '10m' });
      const alone = (Date.now() - quiet) / 1000;
      console.log(
        `joblog ${sandboxClass.padEnd(9)} ${(bytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s = ${(bytes / 1e6 / seconds).toFixed(2)} MB/s` +
          ` (target ≤ ${target} s); sha256 ${exact ? 'equal' : 'DIFFERENT'}; exit ${result.exitCode}; tail-mark ${result.stdout.endsWith('tail-mark\n') ? 'kept' : 'LOST'}; the job alone (output to /dev/null) ${alone.toFixed(1)} s`,
      );
    } finally {
      await t.client.sandboxes.destroy(sandboxId).catch(() => undefined);
    }
  }
}
