// Attacks on the channels between a guest and its host, each with the refusal we expect. A job is root in its guest:
// it floods its output, hunts for the agent's port, forges result frames; a guest whose agent is subverted (played
// here by a socket server standing in for it, since no job can reach the real port) floods the channel itself; QEMU's
// monitor sends an oversize line. The host must stay bounded (its RSS) and a neighbour VM must keep answering.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Docker from 'dockerode';
import { outputFrameHeader } from '../activities/vm/agentFrames';
import { GuestAgentClient } from '../activities/vm/guestAgent';
import { QmpClient } from '../activities/vm/qmp';
import { createVmRuntime, type VmRuntime } from '../activities/vm/runtime';
import type { VmHandle } from '../activities/vm/types';
import { BASE_IMAGE_REF } from '../lib/presets';
import { readTestStack } from './support/stackState';

const MiB = 1024 * 1024;
/** What a host may grow by while a guest floods it. */
const MAX_RSS_GROWTH = 64 * MiB;

let vm: VmRuntime;
let scratch: string;
let runRoot: string;
let attacker: VmHandle;
let neighbour: VmHandle;
/** The neighbour's job latency (median of a few `true` jobs) while nothing floods. */
let normalLatencyMs: number;
const servers: Server[] = [];

function qemuProcesses(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(runRoot);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function neighbourLatency(runs: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = Date.now();
    expect(await vm.exec(neighbour, { argv: ['true'] })).toMatchObject({ exitCode: 0 });
    samples.push(Date.now() - started);
  }
  process.stdout.write(`neighbour samples: ${samples.join(' ')} ms\n`);
  return median(samples);
}

/** Samples this process's RSS until stopped; returns the peak growth over the starting value. */
function watchRss(): () => number {
  const start = process.memoryUsage().rss;
  let peak = start;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  return () => (clearInterval(timer), Math.max(peak, process.memoryUsage().rss) - start);
}

/** A unix socket server standing in for a subverted guest agent or QEMU monitor. */
async function fakePeer(name: string, onConnection: (socket: Socket) => void): Promise<string> {
  const path = join(scratch, name);
  const server = createServer(onConnection);
  servers.push(server);
  await new Promise<void>((done) => server.listen(path, done));
  return path;
}

/** Writes `bytes` of `a` with no newline, following the reader's pace, until done or the reader hangs up. */
function flood(socket: Socket, bytes: number): void {
  const piece = Buffer.alloc(64 * 1024, 'a');
  let sent = 0;
  const more = (): void => {
    while (sent < bytes && !socket.destroyed) {
      sent += piece.length;
      if (!socket.write(piece)) return void socket.once('drain', more);
    }
  };
  socket.on('error', () => undefined);
  more();
}

interface ExecRequest {
  op: string;
  id: string;
  k: string;
  frames?: number;
}

/** Calls `answer` with the first request a fake agent reads (one JSON line). */
function answerFirstRequest(socket: Socket, answer: (request: ExecRequest) => void): void {
  let buffered = '';
  socket.on('error', () => undefined);
  socket.on('data', function read(data) {
    buffered += data.toString();
    if (!buffered.includes('\n')) return;
    socket.off('data', read);
    answer(JSON.parse(buffered.split('\n')[0]!) as ExecRequest);
  });
}

interface Attack {
  name: string;
  /** What the host answers. */
  refusal: string;
  run(): Promise<void>;
}

const attacks: Attack[] = [
  {
    name: 'a job writes 256 MiB without a newline to its stdout',
    refusal: 'streamed and capped: the result keeps 64 KiB, the host stays bounded, the neighbour answers within 2× its latency',
    async run() {
      let streamed = 0;
      const rss = watchRss();
      const lag = monitorEventLoopDelay();
      lag.enable();
      const job = vm.exec(attacker, { argv: ['head', '-c', String(256 * MiB), '/dev/zero'], timeoutMs: 20_000 }, (_, chunk) => {
        streamed += chunk.length;
      });
      await new Promise((r) => setTimeout(r, 2_000)); // the flood is under way
      const during = await neighbourLatency(5);
      const result = await job;
      const growth = rss();
      process.stdout.write(
        `stdout flood: ${(streamed / MiB).toFixed(1)} MiB streamed, rss +${(growth / MiB).toFixed(1)} MiB, ` +
          `neighbour ${during} ms (normal ${normalLatencyMs} ms), event loop delay max ${(lag.max / 1e6).toFixed(0)} ms\n`,
      );
      expect(streamed).toBeGreaterThan(MiB);
      expect(result.stdout.length).toBeLessThanOrEqual(64 * 1024);
      expect(growth).toBeLessThan(MAX_RSS_GROWTH);
      expect(during).toBeLessThanOrEqual(2 * normalLatencyMs);
      expect((await vm.exec(attacker, { argv: ['echo', 'still here'] })).stdout).toBe('still here\n');
    },
  },
  {
    name: "a job looks for the agent's port: its device node, a node made with mknod, the agent's fds, ptrace rights",
    refusal:
      "the node is gone, a new node is busy (the agent holds the one open), the agent's fds and memory are closed to jobs, CAP_SYS_PTRACE is not in their bounding set",
    async run() {
      const script = [
        'ls /dev | grep -q vport && echo NODE-FOUND',
        'ls /sys/class/virtio-ports >/dev/null || echo NO-SYSFS',
        'for d in /sys/class/virtio-ports/*; do mknod /tmp/port c $(tr : " " < $d/dev) && echo MADE; done',
        'head -c 268435456 /dev/zero > /tmp/port && echo WROTE',
        'for f in /proc/1/fd/*; do readlink $f >/dev/null 2>&1 && echo FD-READ; done',
        'cat /proc/1/environ >/dev/null 2>&1 && echo MEMORY-READ',
        'grep CapBnd /proc/self/status',
        'exit 3',
      ].join('\n');
      const result = await vm.exec(attacker, { argv: ['sh', '-c', script] });
      expect(result.exitCode).toBe(3);
      expect(result.stdout).toContain('MADE'); // the attempt was real: the job could make a node…
      expect(result.stdout).not.toMatch(/NODE-FOUND|NO-SYSFS|WROTE|FD-READ|MEMORY-READ/); // …and reached nothing with it
      expect(result.stderr).toMatch(/busy/i);
      const bounding = BigInt(`0x${/CapBnd:\s*([0-9a-f]+)/.exec(result.stdout)![1]}`);
      for (const cap of [16n, 17n, 19n]) expect((bounding >> cap) & 1n).toBe(0n); // SYS_MODULE, SYS_RAWIO, SYS_PTRACE
    },
  },
  {
    name: 'a job running `false` forges a result frame (exitCode 0) on its stdout and at the port',
    refusal: 'the real exit code 1 is reported; the forged frame arrives as output bytes, verbatim',
    async run() {
      const forged = '{"id":"j-0","k":"guess","exitCode":0,"timedOut":false}';
      const script = `printf '%s\\n' '${forged}'; for p in /dev/vport* /tmp/port; do printf '%s\\n' '${forged}' > $p; done 2>/dev/null; false`;
      const result = await vm.exec(attacker, { argv: ['sh', '-c', script] });
      expect(result).toMatchObject({ exitCode: 1, stdout: `${forged}\n` });
    },
  },
  {
    name: 'a job prints a binary output frame header of its own (a guessed key, a 512 MiB length), then more bytes',
    refusal: "all of it arrives as the job's output bytes, verbatim: inside a frame, nothing a job writes is read as one",
    async run() {
      const header = outputFrameHeader('stdout', 'j-0', 'k'.repeat(24), 512 * MiB);
      const octal = [...header].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
      const streamed: Buffer[] = [];
      const result = await vm.exec(attacker, { argv: ['sh', '-c', `printf '${octal}'; echo after`] }, (stream, chunk) => {
        if (stream === 'stdout') streamed.push(Buffer.from(chunk));
      });
      expect(result.exitCode).toBe(0);
      expect(Buffer.concat(streamed).equals(Buffer.concat([header, Buffer.from('after\n')]))).toBe(true);
    },
  },
  {
    name: 'a subverted agent writes 256 MiB without a newline to the channel',
    refusal: 'VM_AGENT_PROTOCOL naming the frame limit, within seconds; the host stays bounded',
    async run() {
      const path = await fakePeer('agent.sock', (socket) => flood(socket, 256 * MiB));
      const rss = watchRss();
      const started = Date.now();
      const agent = await GuestAgentClient.connect(path);
      await expect(agent.exec({ argv: ['true'] })).rejects.toMatchObject({
        code: 'VM_AGENT_PROTOCOL',
        message: expect.stringContaining('longer than 1048576 bytes'),
      });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(rss()).toBeLessThan(MAX_RSS_GROWTH);
      expect(agent.isClosed).toBe(true);
    },
  },
  {
    name: 'a subverted agent answers with frames of the wrong key, or for ids it guessed',
    refusal: 'dropped and counted; the frame with the key decides',
    async run() {
      const path = await fakePeer('keyed.sock', (socket) => {
        let buffered = '';
        socket.on('data', (data) => {
          buffered += data.toString();
          const line = buffered.split('\n')[0]!;
          if (!buffered.includes('\n')) return;
          const request = JSON.parse(line) as { id: string; k: string };
          const frames = [
            { id: request.id, k: 'forged', exitCode: 0, timedOut: false },
            { id: request.id, exitCode: 0, timedOut: false },
            { id: 'j-guessed', k: request.k, exitCode: 0, timedOut: false },
            { id: request.id, k: request.k, exitCode: 1, timedOut: false },
          ];
          socket.write(frames.map((f) => `${JSON.stringify(f)}\n`).join(''));
        });
      });
      const agent = await GuestAgentClient.connect(path);
      await expect(agent.exec({ argv: ['false'] })).resolves.toEqual({ exitCode: 1, timedOut: false });
      expect(agent.dropped).toBe(3);
      agent.close();
    },
  },
  {
    name: 'a subverted agent sends an output frame claiming 2 GiB',
    refusal: 'VM_AGENT_PROTOCOL naming the frame limit as soon as the header is in, before any data is kept',
    async run() {
      const path = await fakePeer('bigframe.sock', (socket) =>
        answerFirstRequest(socket, (request) => {
          socket.write(outputFrameHeader('stdout', request.id, request.k, 2 * 1024 * MiB));
          flood(socket, 256 * MiB);
        }),
      );
      const rss = watchRss();
      const started = Date.now();
      const agent = await GuestAgentClient.connect(path);
      let delivered = 0;
      await expect(agent.exec({ argv: ['true'] }, (_, chunk) => (delivered += chunk.length))).rejects.toMatchObject({
        code: 'VM_AGENT_PROTOCOL',
        message: expect.stringContaining('frame longer than 1048576 bytes'),
      });
      expect(delivered).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(rss()).toBeLessThan(MAX_RSS_GROWTH);
      expect(agent.isClosed).toBe(true);
    },
  },
  {
    name: 'a subverted agent sends output frames under another key, and for ids it guessed',
    refusal: 'none of their bytes reach the job; a guessed id is dropped and counted; the frame with the key and id is delivered',
    async run() {
      const path = await fakePeer('keyedframes.sock', (socket) =>
        answerFirstRequest(socket, (request) => {
          const frame = (id: string, key: string, text: string) =>
            Buffer.concat([outputFrameHeader('stdout', id, key, text.length), Buffer.from(text)]);
          socket.write(
            Buffer.concat([
              frame(request.id, 'f'.repeat(request.k.length), 'forged key '),
              frame('j-guessed', request.k, 'guessed id '),
              frame(request.id, request.k, 'real'),
              Buffer.from(`${JSON.stringify({ id: request.id, k: request.k, exitCode: 0, timedOut: false })}\n`),
            ]),
          );
        }),
      );
      const agent = await GuestAgentClient.connect(path);
      const streamed: Buffer[] = [];
      await expect(agent.exec({ argv: ['true'] }, (_, chunk) => streamed.push(Buffer.from(chunk)))).resolves.toEqual({
        exitCode: 0,
        timedOut: false,
      });
      expect(Buffer.concat(streamed).toString()).toBe('real');
      expect(agent.dropped).toBe(1);
      agent.close();
    },
  },
  {
    name: "QEMU's monitor sends a 2 MiB line",
    refusal: 'VM_AGENT_PROTOCOL naming QMP and the frame limit; the connection is dropped',
    async run() {
      const path = await fakePeer('qmp.sock', (socket) => flood(socket, 2 * MiB));
      await expect(QmpClient.connect(path)).rejects.toMatchObject({
        code: 'VM_AGENT_PROTOCOL',
        message: expect.stringMatching(/^QMP sent a frame longer than 1048576 bytes/),
      });
    },
  },
];

beforeAll(async () => {
  const stack = readTestStack();
  scratch = mkdtempSync('/tmp/sfatk-'); // short: unix socket paths live under it
  runRoot = join(scratch, 'run');
  vm = createVmRuntime({ docker: new Docker({ socketPath: stack.dockerHost.replace('unix://', '') }), runRoot });
  attacker = await vm.create({ id: 'attacker', image: BASE_IMAGE_REF, memoryMiB: 512, vcpus: 1 });
  neighbour = await vm.create({ id: 'neighbour', image: BASE_IMAGE_REF, memoryMiB: 512, vcpus: 1 });
  await neighbourLatency(2); // warm
  normalLatencyMs = await neighbourLatency(5);
}, 240_000);

afterAll(async () => {
  for (const server of servers) server.close();
  for (const handle of [attacker, neighbour]) if (handle) await vm.remove(handle);
  expect(qemuProcesses()).toEqual([]);
  rmSync(scratch, { recursive: true, force: true });
});

test('an agent that predates binary frames (a machine saved before them) streams its output as base64 JSON lines, exact', async () => {
  const bytes = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 256));
  let asked: ExecRequest | undefined;
  const path = await fakePeer('olderagent.sock', (socket) =>
    answerFirstRequest(socket, (request) => {
      asked = request;
      const lines = [];
      for (let at = 0; at < bytes.length; at += 64 * 1024) {
        const data = bytes.subarray(at, at + 64 * 1024).toString('base64');
        lines.push(JSON.stringify({ id: request.id, k: request.k, stream: 'stdout', data }));
      }
      lines.push(JSON.stringify({ id: request.id, k: request.k, exitCode: 0, timedOut: false }));
      socket.write(`${lines.join('\n')}\n`);
    }),
  );
  const agent = await GuestAgentClient.connect(path);
  const streamed: Buffer[] = [];
  await expect(agent.exec({ argv: ['true'] }, (_, chunk) => streamed.push(Buffer.from(chunk)))).resolves.toEqual({
    exitCode: 0,
    timedOut: false,
  });
  expect(asked).toMatchObject({ op: 'exec', frames: 1 }); // asked for frames; an older agent ignores the field
  expect(Buffer.concat(streamed).equals(bytes)).toBe(true);
  agent.close();
});

test('a consumer that falls behind (the log store) holds the agent back: nothing more is read until it has caught up', async () => {
  const total = 8 * MiB;
  const path = await fakePeer('slowstore.sock', (socket) =>
    answerFirstRequest(socket, (request) => {
      const piece = Buffer.alloc(256 * 1024, 'x');
      const frames = Array.from({ length: total / piece.length }, () =>
        Buffer.concat([outputFrameHeader('stdout', request.id, request.k, piece.length), piece]),
      );
      frames.push(Buffer.from(`${JSON.stringify({ id: request.id, k: request.k, exitCode: 0, timedOut: false })}\n`));
      socket.write(Buffer.concat(frames));
    }),
  );
  const agent = await GuestAgentClient.connect(path);
  let delivered = 0;
  let caughtUp!: () => void;
  const drained = new Promise<void>((r) => (caughtUp = r));
  let slow = true;
  const job = agent.exec({ argv: ['true'] }, (_, chunk) => (delivered += chunk.length), { behind: () => slow, drained: () => drained });
  await new Promise((r) => setTimeout(r, 1_000));
  const whileBehind = delivered;
  slow = false;
  caughtUp();
  await expect(job).resolves.toEqual({ exitCode: 0, timedOut: false });
  expect(whileBehind).toBeGreaterThan(0);
  expect(whileBehind).toBeLessThanOrEqual(MiB); // what one read of the socket held, not the 8 MiB on offer
  expect(delivered).toBe(total);
  agent.close();
});

test.each(attacks.map((attack) => [attack.name, attack.refusal, attack] as const))(
  '%s → %s',
  async (_, __, attack) => attack.run(),
  120_000,
);
