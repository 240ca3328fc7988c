// A saturated host for the chaos harness and the vm load bench: a CPU hog per core and an I/O hog (Debian's
// stress-ng), in their own process group, stopped by that group's pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';

export interface Hogs {
  pid: number;
  stop(): void;
}

/** `cpu` CPU hogs (default: one per core) and one I/O hog. */
export function startHogs(opts: { cpu?: number } = {}): Hogs {
  const child: ChildProcess = spawn('stress-ng', ['--cpu', String(opts.cpu ?? cpus().length), '--io', '1', '--timeout', '4h', '--quiet'], {
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  if (!child.pid) throw new Error('stress-ng did not start (bash scripts/provision.sh installs it)');
  const pid = child.pid;
  return {
    pid,
    stop() {
      try {
        process.kill(-pid, 'SIGKILL'); // stress-ng's workers are its children, in its group
      } catch {
        // already gone
      }
    },
  };
}
