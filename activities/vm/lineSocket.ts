// A unix socket that speaks one JSON object per line: what QMP and the guest agent both use.
import { connect, type Socket } from 'node:net';

export class LineSocket {
  private buffered = '';
  private closed = false;
  private readonly closeListeners: Array<(err: Error) => void> = [];

  private constructor(
    private readonly socket: Socket,
    onMessage: (message: Record<string, unknown>) => void,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      this.buffered += data;
      let newline: number;
      while ((newline = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, newline).trim();
        this.buffered = this.buffered.slice(newline + 1);
        const message = parseObject(line);
        if (message) onMessage(message);
      }
    });
    const end = (err?: Error): void => {
      if (this.closed) return;
      this.closed = true;
      for (const listener of this.closeListeners) listener(err ?? new Error('connection closed'));
    };
    socket.on('error', end);
    socket.on('close', () => end());
  }

  /** Connects, failing after `timeoutMs` (a socket file without a listener refuses at once). */
  static open(path: string, onMessage: (message: Record<string, unknown>) => void, timeoutMs = 5_000): Promise<LineSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      const timer = setTimeout(() => (socket.destroy(), reject(new Error(`connect ${path}: timed out`))), timeoutMs);
      socket.once('error', (err) => (clearTimeout(timer), reject(err)));
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new LineSocket(socket, onMessage));
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  onClose(listener: (err: Error) => void): void {
    this.closeListeners.push(listener);
  }

  send(message: object): void {
    if (this.closed) throw new Error('connection closed');
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Anything else on the line (a serial echo, half a line from before a reconnect) is not a message. */
function parseObject(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
