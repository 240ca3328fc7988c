// QEMU's machine protocol (QMP) over the VM's qmp.sock: pause, migrate to a file, resume, quit.
import { SnapflowError } from '../../lib/errors';
import { LineSocket } from './lineSocket';

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  private readonly pending = new Map<string, Pending>();
  private nextId = 0;
  private greeted!: () => void;
  private socket!: LineSocket;

  private constructor() {}

  /** Connects and leaves capabilities negotiation done. QEMU serves one QMP client at a time: close when done. */
  static async connect(socketPath: string, timeoutMs = 5_000): Promise<QmpClient> {
    const client = new QmpClient();
    const greeting = new Promise<void>((resolve) => (client.greeted = resolve));
    client.socket = await LineSocket.open(socketPath, (message) => client.receive(message), { timeoutMs, peer: 'QMP' });
    client.socket.onClose((err) => client.failAll(err));
    const lost = new Promise<never>((_, reject) => client.socket.onClose(reject));
    lost.catch(() => undefined);
    await withTimeout(Promise.race([greeting, lost]), timeoutMs, 'QMP greeting');
    await client.execute('qmp_capabilities');
    return client;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    const id = `q${++this.nextId}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      try {
        this.socket.send(args ? { execute: command, arguments: args, id } : { execute: command, id });
      } catch (err) {
        this.settle(id)?.reject(err as Error);
      }
    });
  }

  close(): void {
    this.socket.close();
  }

  private receive(message: Record<string, unknown>): void {
    if ('QMP' in message) return this.greeted();
    if (typeof message.id !== 'string') return; // asynchronous events
    const pending = this.settle(message.id);
    if (!pending) return;
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(new Error(`QMP: ${error.desc ?? error.class ?? 'error'}`));
    } else pending.resolve(message.return);
  }

  private settle(id: string): Pending | undefined {
    const pending = this.pending.get(id);
    if (pending) clearTimeout(pending.timer);
    this.pending.delete(id);
    return pending;
  }

  private failAll(err: Error): void {
    const lost = err instanceof SnapflowError ? err : new Error(`QMP connection lost: ${err.message}`);
    for (const id of [...this.pending.keys()]) this.settle(id)?.reject(lost);
  }
}

export async function withTimeout<T>(work: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs} ms`)), timeoutMs)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
