// Saving and loading a machine's device state through QEMU's migration stream, compressed with zstd on the way. Guest
// RAM is a shared file (x-ignore-shared keeps it out of the stream), and the stream's end flushes the disk overlay:
// while the machine stays paused after it, the caller reads RAM and overlay as they were at that instant, so memory,
// devices and disk always agree.
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SnapflowError } from '../../lib/errors';
import { machineFiles } from './machine';
import { QmpClient } from './qmp';

interface MigrationStatus {
  status?: string;
  'error-desc'?: string;
}

const SAVE_TIMEOUT_MS = 120_000;

/** Migration of device state only: RAM is the shared file QEMU maps, read by the caller while the machine is paused. */
const IGNORE_SHARED = { capabilities: [{ capability: 'x-ignore-shared', state: true }] };

/**
 * Pauses the VM, writes its device state into QEMU's own directory, runs `whilePaused` (which reads the RAM file and
 * overlay), then resumes it (`resume`) or leaves it paused for the caller to remove; returns the file, for the worker
 * to copy into its state cache, and what `whilePaused` answered. The
 * compressor is QEMU's child, running as QEMU's user (which may not read or write the cache), so a save the worker
 * asked for completes even if the worker dies. QEMU signals the `exec:` command once the stream ends and kills it if
 * it is still running, so the compressor runs in a background subshell that renames its output when it is complete:
 * the file exists only when whole.
 */
export async function saveMachine<T>(
  dir: string,
  opts: { resume: boolean; whilePaused: () => Promise<T> },
): Promise<{ file: string; paused: T; pausedMs: number }> {
  const { qemuDir, savedState: file } = machineFiles(dir);
  // Relative to QEMU's working directory, its own: no quoting, and nothing above it to reach.
  const partial = `${basename(file)}.partial-${randomBytes(4).toString('hex')}`;
  // umask: the state holds the guest's memory (its secrets too), so it is QEMU's user's alone (0600).
  const command = `umask 077; exec 3<&0; (zstd -q -1 -o ${partial} <&3 && mv ${partial} ${basename(file)}) &`;
  rmSync(file, { force: true });
  const qmp = await QmpClient.connect(machineFiles(dir).qmpSocket);
  let saved = false;
  let paused: T;
  let pausedAt = 0;
  try {
    await afterInterruptedSave(qmp);
    await qmp.execute('stop');
    pausedAt = Date.now();
    await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
    // The default bandwidth cap (32 MiB/s) is for live migration over a network; a paused VM to a pipe needs none.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
    await qmp.execute('migrate', { uri: `exec:${command}` });
    await waitForMigration(qmp, SAVE_TIMEOUT_MS, 'save');
    await waitForFile(file, SAVE_TIMEOUT_MS);
    paused = await opts.whilePaused();
    saved = true;
  } catch (err) {
    await qmp.execute('migrate_cancel').catch(() => undefined);
    if (err instanceof SnapflowError && err.code !== 'VM_SNAPSHOT_FAILED') throw err;
    throw new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `saving the vm state failed: ${(err as Error).message}` });
  } finally {
    if (opts.resume || !saved) await qmp.execute('cont').catch(() => undefined);
    qmp.close();
    if (!saved) setTimeout(() => rmSync(join(qemuDir, partial), { force: true }), 2_000).unref();
  }
  return { file, paused: paused!, pausedMs: Date.now() - pausedAt };
}

/**
 * A save whose worker died carried on inside QEMU without it: let that migration end, then resume a machine it left
 * paused as migrated (`postmigrate`), which QEMU refuses to migrate again ("paused due to previous migration").
 */
async function afterInterruptedSave(qmp: QmpClient): Promise<void> {
  const prior = await qmp.execute<MigrationStatus>('query-migrate');
  if (prior.status === 'setup' || prior.status === 'active' || prior.status === 'device')
    await waitForMigration(qmp, SAVE_TIMEOUT_MS, 'the interrupted save').catch(() => undefined);
  const { status } = await qmp.execute<{ status: string }>('query-status');
  if (status === 'postmigrate') await qmp.execute('cont');
}

/**
 * Loads the device state QEMU finds on fd 3 (`-incoming defer`: the capability must be set first), over the RAM file
 * and overlay already in place, then starts the CPUs (a VM saved while paused stays paused).
 */
export async function loadMachine(dir: string, timeoutMs: number): Promise<void> {
  const qmp = await QmpClient.connect(machineFiles(dir).qmpSocket);
  try {
    await qmp.execute('migrate-set-capabilities', IGNORE_SHARED);
    await qmp.execute('migrate-incoming', { uri: 'fd:3' });
    await waitForMigration(qmp, timeoutMs, 'restore');
    const status = await qmp.execute<{ running: boolean }>('query-status');
    if (!status.running) await qmp.execute('cont');
  } catch (err) {
    throw new SnapflowError({ code: 'VM_BOOT_FAILED', message: `loading the vm state failed: ${(err as Error).message}` });
  } finally {
    qmp.close();
  }
}

async function waitForMigration(qmp: QmpClient, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const state = await qmp.execute<MigrationStatus>('query-migrate');
    if (state.status === 'completed') return;
    if (state.status === 'failed' || state.status === 'cancelled')
      throw new Error(`${what} ${state.status}: ${state['error-desc'] ?? 'no detail'}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what} did not complete within ${timeoutMs} ms`);
}

async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`the compressor did not finish ${file} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
