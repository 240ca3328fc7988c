// The log writer against a store that takes its time: a fast job's output goes in a few big appends (not one per
// chunk), every byte in order under contiguous sequence numbers; a slow job's lines still reach the store as they come.
import { randomBytes } from 'node:crypto';
import { JobLog } from '../activities/jobLog';
import type { LogChunk, LogSink } from '../catalog/logs';

const MiB = 1024 * 1024;

function slowSink(ms: number): { sink: LogSink; appends: Array<Array<Omit<LogChunk, 'at'>>>; closed: boolean[] } {
  const appends: Array<Array<Omit<LogChunk, 'at'>>> = [];
  const closed: boolean[] = [];
  const sink: LogSink = {
    open: async () => undefined,
    append: async (_, chunks) => {
      await new Promise((r) => setTimeout(r, ms));
      appends.push(chunks.map((c) => ({ seq: c.seq, stream: c.stream, data: Buffer.from(c.data) })));
    },
    close: async () => void closed.push(true),
  };
  return { sink, appends, closed };
}

test('16 MiB pushed at once go in a few appends of whole chunks, in order, byte-exact', async () => {
  const { sink, appends, closed } = slowSink(20);
  const log = new JobLog(sink, { id: 'job:s:1', kind: 'job', subject: 's', job: 1 });
  const out = randomBytes(16 * MiB);
  for (let at = 0; at < out.length; at += 64 * 1024) log.push('stdout', out.subarray(at, at + 64 * 1024));
  log.push('stderr', Buffer.from('done\n'));
  await expect(log.finish({ outcome: 'exited', exitCode: 0 })).resolves.toMatchObject({ bytes: out.length + 5, dropped: 0 });

  const chunks = appends.flat();
  expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));
  expect(Buffer.concat(chunks.filter((c) => c.stream === 'stdout').map((c) => c.data)).equals(out)).toBe(true);
  expect(chunks.at(-1)).toMatchObject({ stream: 'stderr', data: Buffer.from('done\n') });
  // 64 chunks of 256 KiB and the stderr one: one append per 2 MiB, not one per chunk.
  expect(chunks.length).toBe(65);
  expect(appends.length).toBeLessThanOrEqual(10);
  expect(Math.max(...appends.map((a) => a.reduce((n, c) => n + c.data.length, 0)))).toBeLessThanOrEqual(2 * MiB);
  expect(closed).toEqual([true]);
});

test('a job that prints a line now and then has each line in the store within ~50 ms, one append each', async () => {
  const { sink, appends } = slowSink(5);
  const log = new JobLog(sink, { id: 'job:s:2', kind: 'job', subject: 's', job: 2 });
  for (const line of ['one\n', 'two\n', 'three\n']) {
    log.push('stdout', Buffer.from(line));
    // Its own append, soon (the sink takes 5 ms): waited for up to 5 s, so a busy host's scheduling does not fail it.
    for (let waited = 0; appends.length < ['one\n', 'two\n', 'three\n'].indexOf(line) + 1 && waited < 5_000; waited += 10)
      await new Promise((r) => setTimeout(r, 10));
    expect(appends.at(-1)?.map((c) => c.data.toString())).toEqual([line]);
  }
  await log.finish({ outcome: 'exited', exitCode: 0 });
  expect(appends.length).toBe(3);
});
