// Runs last (test/support/sequencer.js): every workflow history the whole suite left on the shared Temporal
// server is read back, payloads decoded, and searched for secrets — GitHub installation tokens (the fake mints
// GitHub's `ghs_` format), private keys, and the snapshot storage password.
import { Client, Connection } from '@temporalio/client';
import { readTestStack } from './support/stackState';

const decode = (history: unknown): string =>
  JSON.stringify(history, (k, v: unknown) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (k === 'data' && typeof v === 'string') return Buffer.from(v, 'base64').toString('utf8');
    return v;
  });

test('no workflow history of the suite holds a token, a private key or the storage password', async () => {
  const stack = readTestStack();
  const connection = await Connection.connect({ address: stack.temporalAddress });
  try {
    const client = new Client({ connection });
    const secrets: Array<[string, RegExp]> = [
      ['GitHub installation token', /ghs_[A-Za-z0-9]{36}/],
      ['private key', /PRIVATE KEY-----|MII[A-Za-z0-9+/]{60,}/],
      ['storage password', new RegExp(stack.storage.password.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))],
    ];
    let scanned = 0;
    const found: string[] = [];
    for await (const run of client.workflow.list()) {
      const text = decode(await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory());
      for (const [what, pattern] of secrets) if (pattern.test(text)) found.push(`${what} in ${run.workflowId} (${run.runId})`);
      scanned++;
    }
    expect(found).toEqual([]);
    // Only meaningful after the rest of the suite: it must have seen the image, golden and sandbox runs.
    if (process.env.SNAPFLOW_HISTORY_SCAN_MIN) expect(scanned).toBeGreaterThanOrEqual(Number(process.env.SNAPFLOW_HISTORY_SCAN_MIN));
    console.log(`history scan: ${scanned} workflow runs, no secret found`);
  } finally {
    await connection.close();
  }
}, 300_000);
