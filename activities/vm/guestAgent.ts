// The host side of the guest agent's protocol (guest/agent): one JSON object per line, at most MAX_FRAME_BYTES,
// over the VM's virtio-serial port, which QEMU exposes as agent.sock; a job's output comes as binary frames
// (agentFrames.ts), or as base64 in JSON lines from an agent that predates them (a machine saved before).
// Jobs are multiplexed by id over one connection.
// Each connection draws a key that rides in every request; the agent echoes it in every answer and keeps it in its
// own memory only. An answer without it (or for an id this connection did not choose) is dropped and counted.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { SnapflowError } from '../../lib/errors';
import { FRAMES_BINARY, type OutputFrame } from './agentFrames';
import { LineSocket } from './lineSocket';
import type { ExecJob, OutputBackpressure, OutputListener } from './types';

interface Job {
  onOutput?: OutputListener;
  backpressure?: OutputBackpressure;
  resolve(result: { exitCode: number; timedOut: boolean }): void;
  reject(err: Error): void;
}

interface Ping {
  resolve(uptimeMs: number): void;
  reject(err: Error): void;
}

/** Open connections by their socket: a job's cancel reaches the guest over the connection the job runs on. */
const live = new Map<string, Set<GuestAgentClient>>();

/**
 * Asks the guest behind `socketPath` to end every job running over this host's connections: SIGTERM to each job's
 * process group, SIGKILL after `graceMs`. Returns how many jobs were asked.
 */
export function cancelGuestJobs(socketPath: string, graceMs: number): number {
  let asked = 0;
  for (const client of live.get(socketPath) ?? []) asked += client.cancelAll(graceMs);
  return asked;
}

export class GuestAgentClient {
  private readonly jobs = new Map<string, Job>();
  private readonly pings = new Map<string, Ping>();
  private socket!: LineSocket;
  private readonly key = Buffer.from(randomBytes(18).toString('base64url'));
  /** Frames this connection dropped: a wrong or missing key, or an id it never sent (a binary frame without the key is no frame). */
  dropped = 0;

  private constructor() {}

  static async connect(socketPath: string, timeoutMs = 5_000): Promise<GuestAgentClient> {
    const client = new GuestAgentClient();
    client.socket = await LineSocket.open(socketPath, (message) => client.receive(message), {
      timeoutMs,
      peer: 'guest agent',
      frames: { key: client.key, onOutputFrame: (frame) => client.output(frame) },
    });
    const peers = live.get(socketPath) ?? new Set<GuestAgentClient>();
    live.set(socketPath, peers.add(client));
    client.socket.onClose((err) => {
      peers.delete(client);
      if (!peers.size) live.delete(socketPath);
      client.failAll(err);
    });
    return client;
  }

  get isClosed(): boolean {
    return this.socket.isClosed;
  }

  get busy(): boolean {
    return this.jobs.size > 0;
  }

  /** The guest's uptime, or a rejection after `timeoutMs`. */
  ping(timeoutMs: number): Promise<number> {
    const id = `p-${randomBytes(12).toString('hex')}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => (this.pings.delete(id), reject(new Error(`guest agent: no pong within ${timeoutMs} ms`))), timeoutMs);
      const done = (fn: () => void): void => (clearTimeout(timer), this.pings.delete(id), fn());
      this.pings.set(id, { resolve: (uptime) => done(() => resolve(uptime)), reject: (err) => done(() => reject(err)) });
      this.trySend({ op: 'ping', id, k: this.key.toString() }, (err) => this.pings.get(id)?.reject(err));
    });
  }

  /**
   * Runs a job to its end; output reaches `onOutput` as it arrives, and while `backpressure` is behind the connection
   * stops reading (the guest's writes wait). Rejects only when the connection is lost.
   */
  exec(job: ExecJob, onOutput?: OutputListener, backpressure?: OutputBackpressure): Promise<{ exitCode: number; timedOut: boolean }> {
    const id = `j-${randomBytes(12).toString('hex')}`;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { onOutput, backpressure, resolve, reject });
      this.trySend(
        {
          op: 'exec',
          id,
          k: this.key.toString(),
          argv: job.argv,
          env: job.env ?? {},
          workdir: job.workdir ?? '',
          timeoutMs: job.timeoutMs ?? 0,
          frames: FRAMES_BINARY,
        },
        (err) => {
          this.jobs.delete(id);
          reject(err);
        },
      );
    });
  }

  /** Signals every job of this connection (see cancelGuestJobs); the jobs end as usual, with their exit. */
  cancelAll(graceMs: number): number {
    for (const id of this.jobs.keys()) this.trySend({ op: 'signal', id, k: this.key.toString(), graceMs }, () => undefined);
    return this.jobs.size;
  }

  close(): void {
    this.socket.close();
  }

  private trySend(message: object, onError: (err: Error) => void): void {
    try {
      this.socket.send(message);
    } catch (err) {
      onError(err as Error);
    }
  }

  private receive(message: Record<string, unknown>): void {
    const id = typeof message.id === 'string' ? message.id : undefined;
    if (!id || !this.keyed(message)) return void this.dropped++;
    if (message.pong === true) return this.pings.get(id)?.resolve(Number(message.uptimeMs));
    const job = this.jobs.get(id);
    if (!job) return void this.dropped++; // a job of an earlier connection
    if (message.stream === 'stdout' || message.stream === 'stderr') {
      job.onOutput?.(message.stream, Buffer.from(String(message.data ?? ''), 'base64'));
      this.holdBack(job);
    } else if (typeof message.exitCode === 'number') {
      this.jobs.delete(id);
      job.resolve({ exitCode: message.exitCode, timedOut: message.timedOut === true });
    }
  }

  /** Where a binary output frame's data goes (the reader checked its key): its job's listener. */
  private output(frame: OutputFrame): ((piece: Buffer) => void) | undefined {
    const job = this.jobs.get(frame.id);
    if (!job) return void this.dropped++; // an id this connection never sent
    const { onOutput } = job;
    return onOutput && ((piece) => (onOutput(frame.stream, piece), this.holdBack(job)));
  }

  /** A consumer that fell behind pauses the reading until it has caught up. */
  private holdBack(job: Job): void {
    if (job.backpressure?.behind()) this.socket.pauseUntil(job.backpressure.drained());
  }

  private keyed(message: Record<string, unknown>): boolean {
    const key = typeof message.k === 'string' ? Buffer.from(message.k) : undefined;
    return key !== undefined && key.length === this.key.length && timingSafeEqual(key, this.key);
  }

  private failAll(err: Error): void {
    const lost = err instanceof SnapflowError ? err : new Error(`guest agent connection lost: ${err.message}`);
    for (const [id, job] of this.jobs) {
      this.jobs.delete(id);
      job.reject(lost);
    }
    for (const ping of this.pings.values()) ping.reject(lost);
  }
}
