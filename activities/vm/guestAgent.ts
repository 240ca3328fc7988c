// The host side of the guest agent's protocol (guest/agent): one JSON object per line over the VM's second
// serial port, which QEMU exposes as agent.sock. Jobs are multiplexed by id over one connection.
import { randomBytes } from 'node:crypto';
import { LineSocket } from './lineSocket';
import type { ExecJob, OutputListener } from './types';

interface Job {
  onOutput?: OutputListener;
  resolve(result: { exitCode: number; timedOut: boolean }): void;
  reject(err: Error): void;
}

interface Ping {
  resolve(uptimeMs: number): void;
  reject(err: Error): void;
}

export class GuestAgentClient {
  private readonly jobs = new Map<string, Job>();
  private readonly pings = new Map<string, Ping>();
  private socket!: LineSocket;

  private constructor() {}

  static async connect(socketPath: string, timeoutMs = 5_000): Promise<GuestAgentClient> {
    const client = new GuestAgentClient();
    client.socket = await LineSocket.open(socketPath, (message) => client.receive(message), timeoutMs);
    client.socket.onClose((err) => client.failAll(err));
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
    const id = `p-${randomBytes(4).toString('hex')}`;
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => (this.pings.delete(id), reject(new Error(`guest agent: no pong within ${timeoutMs} ms`))), timeoutMs);
      const done = (fn: () => void): void => (clearTimeout(timer), this.pings.delete(id), fn());
      this.pings.set(id, { resolve: (uptime) => done(() => resolve(uptime)), reject: (err) => done(() => reject(err)) });
      this.trySend({ op: 'ping', id }, (err) => this.pings.get(id)?.reject(err));
    });
  }

  /** Runs a job to its end; output reaches `onOutput` as it arrives. Rejects only when the connection is lost. */
  exec(job: ExecJob, onOutput?: OutputListener): Promise<{ exitCode: number; timedOut: boolean }> {
    const id = `j-${randomBytes(6).toString('hex')}`;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { onOutput, resolve, reject });
      this.trySend(
        { op: 'exec', id, argv: job.argv, env: job.env ?? {}, workdir: job.workdir ?? '', timeoutMs: job.timeoutMs ?? 0 },
        (err) => {
          this.jobs.delete(id);
          reject(err);
        },
      );
    });
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
    if (!id) return; // the ready event
    if (message.pong === true) return this.pings.get(id)?.resolve(Number(message.uptimeMs));
    const job = this.jobs.get(id);
    if (!job) return; // a job of an earlier connection
    if (message.stream === 'stdout' || message.stream === 'stderr') {
      job.onOutput?.(message.stream, Buffer.from(String(message.data ?? ''), 'base64'));
    } else if (typeof message.exitCode === 'number') {
      this.jobs.delete(id);
      job.resolve({ exitCode: message.exitCode, timedOut: message.timedOut === true });
    }
  }

  private failAll(err: Error): void {
    const lost = new Error(`guest agent connection lost: ${err.message}`);
    for (const [id, job] of this.jobs) {
      this.jobs.delete(id);
      job.reject(lost);
    }
    for (const ping of this.pings.values()) ping.reject(lost);
  }
}
