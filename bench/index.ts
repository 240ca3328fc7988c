// `npm run bench`: starts the same real stack as the tests (Temporal, dockerd, registry, Postgres), runs each
// benchmark and prints its ratios. Nothing here is a pass/fail test; targets are printed beside the numbers.
import globalSetup from '../test/globalSetup';
import globalTeardown from '../test/globalTeardown';
import { createTestEnv, uniqueHostId, type TestEnv } from '../test/support/stack';
import { benchCli } from './cli.bench';
import { benchGolden } from './golden.bench';
import { benchMultiHost } from './multihost.bench';

/** A control worker and one announced host worker on the shared stack, torn down after `work`. */
async function withOneHost(work: (t: TestEnv) => Promise<void>): Promise<void> {
  const t = await createTestEnv();
  try {
    await t.startControlWorker();
    const hostId = uniqueHostId('bench');
    await t.startHostWorker({ hostId });
    await t.client.refreshHost(hostId);
    await work(t);
  } finally {
    await t.teardown();
  }
}

async function main(): Promise<void> {
  const only = process.argv.slice(2).filter((a, i, all) => !a.startsWith('-') && all[i - 1] !== '--hosts');
  const hostsArg = process.argv.find((a, i) => process.argv[i - 1] === '--hosts' || a.startsWith('--hosts='));
  // `--hosts 1,2,4` alone runs the multi-host benchmark only; no arguments run everything.
  const wants = (name: string): boolean => (only.length === 0 ? !hostsArg || name === 'multihost' : only.includes(name));
  if (wants('cli')) await benchCli(); // no stack needed
  if (only.includes('vmload')) {
    const { benchVmLoad } = await import('./vmload.bench'); // no stack either; saturates the host, so only when named
    await benchVmLoad();
  }
  if (only.length > 0 && only.every((name) => name === 'cli' || name === 'vmload')) return;
  await globalSetup();
  try {
    if (wants('golden')) await withOneHost(benchGolden);
    if (wants('sandbox')) {
      const { benchSandboxEndToEnd } = await import('./sandbox.bench');
      await withOneHost(benchSandboxEndToEnd);
    }
    if (wants('multihost')) {
      const counts = (hostsArg?.replace('--hosts=', '') ?? '1,2,4').split(',').map(Number);
      const t = await createTestEnv();
      try {
        await t.startControlWorker();
        await benchMultiHost(t, counts);
      } finally {
        await t.teardown();
      }
    }
    if (wants('joblog')) {
      const { benchJobLog } = await import('./joblog.bench');
      await withOneHost(benchJobLog);
    }
    if (only.includes('joblogcap')) {
      // 2 GiB through the log store: only when named.
      const { benchJobLogCap } = await import('./joblogcap.bench');
      await withOneHost(benchJobLogCap);
    }
    if (wants('vm')) {
      const { benchVm } = await import('./vm.bench');
      await benchVm();
    }
    if (wants('vmdisk')) {
      const { benchVmDisk } = await import('./vmDisk.bench');
      await benchVmDisk();
    }
    if (wants('restore')) {
      const { benchRestore } = await import('./restore.bench');
      await benchRestore();
    }
  } finally {
    await globalTeardown();
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0), // the SDK's native runtime keeps a handle open
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
