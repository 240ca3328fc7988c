// Saving and loading a whole machine through QEMU's migration stream, compressed with zstd on the way. A machine with
// a root disk sends the blocks its guest wrote (its overlay's, not the base's: block migration, incremental) in the
// same stream, taken at the same paused instant as its memory, so memory and disk always agree.
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

/**
 * Pauses the VM and writes its memory and device state into QEMU's own directory, then resumes it (`resume`) or
 * leaves it paused for the caller to remove; returns the file, for the worker to copy into its state cache. The
 * compressor is QEMU's child, running as QEMU's user (which may not read or write the cache), so a save the worker
 * asked for completes even if the worker dies. QEMU signals the `exec:` command once the stream ends and kills it if
 * it is still running, so the compressor runs in a background subshell that renames its output when it is complete:
 * the file exists only when whole.
 */
export async function saveMachine(dir: string, opts: { resume: boolean; disk: boolean }): Promise<string> {
  const { qemuDir, savedState: file } = machineFiles(dir);
  // Relative to QEMU's working directory, its own: no quoting, and nothing above it to reach.
  const partial = `${basename(file)}.partial-${randomBytes(4).toString('hex')}`;
  // umask: the state holds the guest's memory (its secrets too), so it is QEMU's user's alone (0600).
  const command = `umask 077; exec 3<&0; (zstd -q -1 -o ${partial} <&3 && mv ${partial} ${basename(file)}) &`;
  rmSync(file, { force: true });
  const qmp = await QmpClient.connect(machineFiles(dir).qmpSocket);
  let saved = false;
  try {
    await afterInterruptedSave(qmp);
    await qmp.execute('stop');
    // The default bandwidth cap (32 MiB/s) is for live migration over a network; a paused VM to a pipe needs none.
    if (opts.disk) await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'block', state: true }] });
    await qmp.execute('migrate-set-parameters', {
      'max-bandwidth': Number.MAX_SAFE_INTEGER,
      ...(opts.disk ? { 'block-incremental': true } : {}),
    });
    await qmp.execute('migrate', { uri: `exec:${command}` });
    await waitForMigration(qmp, SAVE_TIMEOUT_MS, 'save');
    await waitForFile(file, SAVE_TIMEOUT_MS);
    saved = true;
  } catch (err) {
    await qmp.execute('migrate_cancel').catch(() => undefined);
    throw new SnapflowError({ code: 'VM_SNAPSHOT_FAILED', message: `saving the vm state failed: ${(err as Error).message}` });
  } finally {
    if (opts.resume || !saved) await qmp.execute('cont').catch(() => undefined);
    qmp.close();
    if (!saved) setTimeout(() => rmSync(join(qemuDir, partial), { force: true }), 2_000).unref();
  }
  return file;
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

/** Waits for an `-incoming` load to complete, then starts the CPUs (a VM saved while paused stays paused). */
export async function loadMachine(dir: string, timeoutMs: number): Promise<void> {
  const qmp = await QmpClient.connect(machineFiles(dir).qmpSocket);
  try {
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
