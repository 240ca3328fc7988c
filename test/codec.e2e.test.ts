// Payload encryption on the real stack: with SNAPFLOW_PAYLOAD_KEY set, the client and both workers agree, the
// Temporal server stores only ciphertext, and the codec server lets the UI (and only the UI) read it back.
import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA } from '../lib/codec';
import { workflowIds } from '../lib/ids';
import { startCodecServer } from '../scripts/codec-server';
import { createTestEnv, uniqueHostId, type TestEnv } from './support/stack';

type Payload = temporal.api.common.v1.IPayload;
interface JsonPayloads {
  payloads: Array<{ metadata: Record<string, string>; data: string }>;
}

const keyId = 'e2e-k1';
const hostId = uniqueHostId('codec');
let t: TestEnv;
let plainConnection: Connection;
/** What someone with access to Temporal but without the key sees. */
let plainClient: Client;

beforeAll(async () => {
  t = await createTestEnv({ env: { SNAPFLOW_PAYLOAD_KEY: randomBytes(32).toString('base64'), SNAPFLOW_PAYLOAD_KEY_ID: keyId } });
  await t.startControlWorker();
  await t.startHostWorker({ hostId });
  plainConnection = await Connection.connect({ address: t.stack.temporalAddress });
  plainClient = new Client({ connection: plainConnection, namespace: 'default' });
});
afterAll(async () => {
  await plainConnection?.close();
  await t?.teardown();
});

/** Every payload in a history, except search attribute values (indexed by the server, so never encrypted). */
function payloadsIn(value: unknown, path = ''): Array<{ path: string; payload: Payload }> {
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return [];
  // Every payload carries an `encoding` in its metadata (the SDK's converters and our codec both write one).
  if ((value as Payload).metadata?.encoding instanceof Uint8Array) return [{ path, payload: value as Payload }];
  return Object.entries(value).flatMap(([key, child]) => (key === 'searchAttributes' ? [] : payloadsIn(child, `${path}.${key}`)));
}

const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? []).toString('utf8');
const toJson = (payloads: Payload[]): JsonPayloads => ({
  payloads: payloads.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data ?? []).toString('base64'),
  })),
});

let refreshId: string;
let encrypted: Payload[];

test('a workflow and its activities run as usual, while Temporal stores only ciphertext', async () => {
  const facts = await t.client.refreshHost(hostId);
  expect(facts).toMatchObject({ hostId, dockerHost: t.stack.dockerHost, baseImagePresent: true });

  refreshId = workflowIds.hostRefresh(hostId);
  const history = await plainClient.workflow.getHandle(refreshId).fetchHistory();
  // Markers carry the SDK's own bookkeeping without the codec (a patch id from `patched()`, a local activity's id, type
  // and time): nothing of ours. A local activity's result is `details.result`, which is checked like every payload.
  const sdkOwn = /markerRecordedEventAttributes\.details\.(patch-data|data)\./;
  const found = payloadsIn(history.events).filter((f) => !sdkOwn.test(f.path));
  // Workflow input and result, describeHost's result, upsertHost's input: all of them encrypted with our key id.
  const paths = found.map((f) => f.path);
  expect(paths.some((p) => p.includes('workflowExecutionStartedEventAttributes.input'))).toBe(true);
  expect(paths.some((p) => p.includes('activityTaskScheduledEventAttributes.input'))).toBe(true);
  expect(paths.some((p) => p.includes('activityTaskCompletedEventAttributes.result'))).toBe(true);
  expect(paths.some((p) => p.includes('workflowExecutionCompletedEventAttributes.result'))).toBe(true);
  for (const { path, payload } of found) {
    expect({ path, encoding: text(payload.metadata?.encoding), keyId: text(payload.metadata?.[KEY_ID_METADATA]) }).toEqual({
      path,
      encoding: ENCRYPTED_ENCODING,
      keyId,
    });
    expect(Buffer.from(payload.data ?? []).includes(hostId)).toBe(false);
  }
  encrypted = found.map((f) => f.payload);

  // The docker socket path is only ever in payloads (host facts): nowhere in the stored history bytes at all.
  const stored = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
  expect(stored.includes(t.stack.dockerHost)).toBe(false);
  const withoutMarkers = temporal.api.history.v1.History.encode({
    // SDK bookkeeping (markers, the TemporalChangeVersion search attribute `patched()` sets) is plain by design.
    events: history.events?.filter((e) => !e.markerRecordedEventAttributes && !e.upsertWorkflowSearchAttributesEventAttributes),
  }).finish();
  expect(Buffer.from(withoutMarkers).includes('json/plain')).toBe(false);
});

test('without the key the result cannot be read; with it, it can', async () => {
  await expect(plainClient.workflow.getHandle(refreshId).result()).rejects.toThrow(/binary\/encrypted/);
  expect(await t.client.temporal.workflow.getHandle(refreshId).result()).toMatchObject({ hostId, dockerHost: t.stack.dockerHost });
});

describe('the codec server the Temporal UI calls', () => {
  const uiOrigin = 'http://127.0.0.1:8233';
  let server: { url: string; close(): Promise<void> };
  beforeAll(async () => {
    server = await startCodecServer({ codec: new EncryptionCodec(t.config.payloadKey!), port: 0, uiOrigin });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
  afterAll(async () => server?.close());

  const post = (path: string, body: unknown, origin = uiOrigin): Promise<Response> =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { origin, 'content-type': 'application/json', 'x-namespace': 'default' },
      body: JSON.stringify(body),
    });

  test('answers the UI preflight with its origin, POST and the headers the UI sends', async () => {
    const preflight = await fetch(`${server.url}/decode`, {
      method: 'OPTIONS',
      headers: { origin: uiOrigin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('content-type');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('x-namespace');
  });

  test('/decode turns the stored history payloads back into the plaintext', async () => {
    const response = await post('/decode', toJson(encrypted));
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBe(uiOrigin);
    const decoded = ((await response.json()) as JsonPayloads).payloads;
    expect(decoded).toHaveLength(encrypted.length);
    // Back to what the SDK's default converter wrote (json/plain, binary/null for a void result): readable values.
    const values = decoded.map((p) =>
      defaultPayloadConverter.fromPayload({
        metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(p.data, 'base64'),
      }),
    );
    expect(decoded.map((p) => Buffer.from(p.metadata.encoding!, 'base64').toString())).toContain('json/plain');
    // The request as the client sent it (with the actor's signed claim beside it when an actor key is set).
    expect(values).toContainEqual(expect.objectContaining({ hostId, actor: 'operator' }));
    expect(JSON.stringify(values)).toContain(t.stack.dockerHost);
  });

  test('/encode produces what the workers can read back', async () => {
    const response = await post('/encode', toJson([defaultPayloadConverter.toPayload({ hostId })]));
    expect(response.status).toBe(200);
    const [payload] = ((await response.json()) as JsonPayloads).payloads;
    expect(Buffer.from(payload!.metadata.encoding!, 'base64').toString()).toBe(ENCRYPTED_ENCODING);
    const [decoded] = await new EncryptionCodec(t.config.payloadKey!).decode([
      {
        metadata: Object.fromEntries(Object.entries(payload!.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(payload!.data, 'base64'),
      },
    ]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual({ hostId });
  });

  test('another origin, another path or a payload under an unknown key gets no plaintext', async () => {
    const foreign = await post('/decode', toJson(encrypted), 'http://evil.example');
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).not.toContain(hostId);
    expect((await fetch(`${server.url}/decode`, { method: 'OPTIONS', headers: { origin: 'http://evil.example' } })).status).toBe(403);
    expect((await post('/keys', {})).status).toBe(404);
    expect((await post('/decode', 'not payloads')).status).toBe(400);

    const [otherKey] = await new EncryptionCodec({ id: 'k-elsewhere', key: randomBytes(32), oldKeys: [] }).encode([
      defaultPayloadConverter.toPayload({ hostId }),
    ]);
    const unknown = await post('/decode', toJson([otherKey!]));
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: string }).error).toContain('k-elsewhere');
  });
});
