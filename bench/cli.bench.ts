// `snapflow --help` start-up against a bare `node -e 0`, interleaved in the same run: the CLI loads the SDK,
// the database driver and the client only when a command runs, so help and --version answer at once.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { median, report } from './measure';

const bin = join(__dirname, '..', 'client', 'bin', 'snapflow.js');

function startUp(args: string[]): number {
  const start = process.hrtime.bigint();
  const child = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (child.status !== 0) throw new Error(`${args.join(' ')} exited ${child.status}: ${child.stderr}`);
  return ms;
}

export async function benchCli(runs = 15): Promise<void> {
  const bare: number[] = [];
  const help: number[] = [];
  startUp([bin, '--help']); // warm the file cache
  for (let i = 0; i < runs; i++) {
    bare.push(startUp(['-e', '0']));
    help.push(startUp([bin, '--help']));
  }
  const helpMs = median(help);
  report(`snapflow --help start-up vs node -e 0 (median of ${runs})`, helpMs, median(bare), { target: 'under 300 ms', ok: helpMs < 300 });
}
