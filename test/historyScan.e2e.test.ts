// Runs last (test/support/sequencer.js): every workflow history the whole suite left on the shared Temporal server
// is read back, payloads decoded (encrypted ones decrypted with the keys the suite used), and searched for secrets —
// GitHub installation tokens (the fake mints GitHub's `ghs_` format), private keys, the storage password. So are
// every worker log line and every test catalog (each scanned, all tables and columns, before it was dropped).
import { readFileSync, existsSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { ENCRYPTED_ENCODING, EncryptionCodec } from '../lib/codec';
import { readJsonLines, scanFiles, secretPatterns, type CatalogScan } from './support/secrets';
import { readTestStack } from './support/stackState';

type Payload = temporal.api.common.v1.IPayload;

const decode = (history: unknown): string =>
  JSON.stringify(history, (k, v: unknown) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
    if (k === 'data' && typeof v === 'string') return Buffer.from(v, 'base64').toString('utf8');
    return v;
  });

/** The suite's payload keys as one keyring (each id once), or none when no test encrypted. */
function suiteCodec(dir: string): EncryptionCodec | undefined {
  const byId = new Map(readJsonLines<{ id: string; key: string }>(scanFiles(dir).payloadKeys).map((k) => [k.id, k.key]));
  const [first, ...rest] = [...byId.entries()].map(([id, key]) => ({ id, key: Buffer.from(key, 'base64') }));
  return first && new EncryptionCodec({ ...first, oldKeys: rest });
}

/** Replaces every encrypted payload in a history by its plaintext, in place; returns how many it decrypted. */
async function decrypt(value: unknown, codec: EncryptionCodec | undefined): Promise<number> {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return 0;
  const payload = value as Payload;
  const encoding = payload.metadata?.encoding;
  if (encoding instanceof Uint8Array && Buffer.from(encoding).toString('utf8') === ENCRYPTED_ENCODING) {
    if (!codec) throw new Error('an encrypted payload, but no test recorded its key');
    const [plain] = await codec.decode([payload as never]);
    Object.assign(payload, { metadata: plain!.metadata, data: plain!.data });
    return 1;
  }
  let n = 0;
  for (const child of Object.values(value)) n += await decrypt(child, codec);
  return n;
}

test('no workflow history, worker log or catalog of the suite holds a token, a private key or the storage password', async () => {
  const stack = readTestStack();
  const files = scanFiles(stack.dir);
  const secrets = secretPatterns(stack);
  const codec = suiteCodec(stack.dir);
  const connection = await Connection.connect({ address: stack.temporalAddress });
  const found: string[] = [];
  let scanned = 0;
  let decrypted = 0;
  try {
    const client = new Client({ connection });
    for await (const run of client.workflow.list()) {
      const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      decrypted += await decrypt(history, codec);
      const text = decode(history);
      for (const [what, pattern] of secrets) if (pattern.test(text)) found.push(`${what} in ${run.workflowId} (${run.runId})`);
      scanned++;
    }
  } finally {
    await connection.close();
  }
  const log = existsSync(files.workerLog) ? readFileSync(files.workerLog, 'utf8') : '';
  for (const [what, pattern] of secrets) if (pattern.test(log)) found.push(`${what} in the worker log`);
  const catalogs = readJsonLines<CatalogScan>(files.catalog);
  for (const c of catalogs) found.push(...c.found.map((f) => `${f} of ${c.database}`));

  expect(found).toEqual([]);
  // A key the suite used means encrypted histories exist: the scan must have read through them.
  if (codec) expect(decrypted).toBeGreaterThan(0);
  // Only meaningful after the rest of the suite: it must have seen the image, golden and sandbox runs.
  if (process.env.SNAPFLOW_HISTORY_SCAN_MIN) {
    expect(scanned).toBeGreaterThanOrEqual(Number(process.env.SNAPFLOW_HISTORY_SCAN_MIN));
    expect(catalogs.length).toBeGreaterThan(5);
    expect(log.length).toBeGreaterThan(0);
  }
  console.log(
    `secret scan: ${scanned} workflow runs (${decrypted} encrypted payloads decrypted), ${log.split('\n').length} worker log lines, ` +
      `${catalogs.length} catalogs (${catalogs.reduce((n, c) => n + c.values, 0)} rows): no secret found`,
  );
}, 300_000);
