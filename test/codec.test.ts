// Payload encryption, unit level: what the codec writes, what it refuses to read, and how keys are configured.
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { ENCRYPTED_ENCODING, EncryptionCodec, KEY_ID_METADATA } from '../lib/codec';
import { loadConfig, type PayloadKeyring } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { expectConfigError } from './support/config';

const secret = { hostId: 'host-with-a-secret-name', token: 'not-for-history' };
const keyring = (id: string, oldKeys: PayloadKeyring['oldKeys'] = []): PayloadKeyring => ({ id, key: randomBytes(32), oldKeys });
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? []).toString('utf8');

async function failureOf(promise: Promise<unknown>): Promise<SnapflowError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(SnapflowError);
  return error as SnapflowError;
}

describe('the codec', () => {
  const k1 = keyring('k1');
  const codec = new EncryptionCodec(k1);

  test('round-trips every payload, metadata included, and labels it with the encoding and key id', async () => {
    const originals = [
      defaultPayloadConverter.toPayload(secret),
      defaultPayloadConverter.toPayload(undefined),
      defaultPayloadConverter.toPayload(new Uint8Array([0, 1, 2])),
    ];
    const encoded = await codec.encode(originals);
    expect(encoded).toHaveLength(3);
    for (const payload of encoded) {
      expect(Object.keys(payload.metadata ?? {}).sort()).toEqual([KEY_ID_METADATA, 'encoding'].sort());
      expect(text(payload.metadata?.encoding)).toBe(ENCRYPTED_ENCODING);
      expect(text(payload.metadata?.[KEY_ID_METADATA])).toBe('k1');
    }
    const decoded = await codec.decode(encoded);
    expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([secret, undefined, new Uint8Array([0, 1, 2])]);
    expect(decoded.map((p) => text(p.metadata?.encoding))).toEqual(originals.map((p) => text(p.metadata?.encoding)));
    expect(await codec.encode([])).toEqual([]);
  });

  test('the ciphertext does not contain the plaintext, and the same value encrypts differently each time', async () => {
    const [a, b] = await codec.encode([defaultPayloadConverter.toPayload(secret), defaultPayloadConverter.toPayload(secret)]);
    for (const payload of [a!, b!]) {
      const stored = Buffer.from(payload.data!);
      expect(stored.includes(secret.hostId)).toBe(false);
      expect(stored.includes(secret.token)).toBe(false);
      expect(stored.includes('json/plain')).toBe(false);
      expect(stored.length).toBeGreaterThan(12 + 16);
    }
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false); // fresh iv per payload
  });

  test.each([
    ['a ciphertext byte', (data: Buffer) => (data[20]! ^= 0x01)],
    ['the iv', (data: Buffer) => (data[0]! ^= 0x01)],
    ['the tag', (data: Buffer) => (data[data.length - 1]! ^= 0x01)],
  ])('a payload with %s altered is refused, naming its key id', async (_what, alter) => {
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload(secret)]);
    const data = Buffer.from(encoded!.data!);
    alter(data);
    const error = await failureOf(codec.decode([{ ...encoded, data }]));
    expect(error.message).toContain('failed authentication');
    expect(error.message).toContain('k1');
  });

  test('a truncated payload or one without a key id is refused, not passed on', async () => {
    const [encoded] = await codec.encode([defaultPayloadConverter.toPayload(secret)]);
    expect((await failureOf(codec.decode([{ ...encoded, data: Buffer.alloc(10) }]))).message).toContain('too short');
    const { [KEY_ID_METADATA]: _id, ...withoutId } = encoded!.metadata!;
    expect((await failureOf(codec.decode([{ ...encoded, metadata: withoutId }]))).message).toContain('encryption-key-id');
  });

  test('an unknown key id is a clear error naming that id and how to add it', async () => {
    const other = new EncryptionCodec(keyring('k2'));
    const [encoded] = await other.encode([defaultPayloadConverter.toPayload(secret)]);
    const error = await failureOf(codec.decode([encoded!]));
    expect(error).toMatchObject({ code: 'CONFIG_INVALID', field: 'SNAPFLOW_PAYLOAD_OLD_KEYS' });
    expect(error.message).toContain('key id k2');
    expect(error.message).toContain('current k1');
    expect(error.hint).toContain('SNAPFLOW_PAYLOAD_OLD_KEYS=k2:');
  });

  test('a different key under a known id fails authentication (a key is never replaced under the same id)', async () => {
    const impostor = new EncryptionCodec(keyring('k1'));
    const [encoded] = await impostor.encode([defaultPayloadConverter.toPayload(secret)]);
    expect((await failureOf(codec.decode([encoded!]))).message).toContain('failed authentication');
  });

  test('after rotation old payloads decode with the old key, new ones are written with the new key only', async () => {
    const rotated = new EncryptionCodec(keyring('k2', [{ id: k1.id, key: k1.key }]));
    const [old] = await codec.encode([defaultPayloadConverter.toPayload(secret)]);
    expect(defaultPayloadConverter.fromPayload((await rotated.decode([old!]))[0]!)).toEqual(secret);
    const [fresh] = await rotated.encode([defaultPayloadConverter.toPayload(secret)]);
    expect(text(fresh!.metadata?.[KEY_ID_METADATA])).toBe('k2');
    await expect(codec.decode([fresh!])).rejects.toThrow(/key id k2/);
  });

  test('payloads that are not encrypted pass through decode unchanged (histories from before encryption)', async () => {
    const plain: Payload = defaultPayloadConverter.toPayload(secret);
    expect(await codec.decode([plain])).toEqual([plain]);
  });

  test('a key that is not 32 bytes is refused when the codec is built', () => {
    expect(() => new EncryptionCodec({ id: 'short', key: randomBytes(16), oldKeys: [] })).toThrow(/32 bytes/);
  });
});

describe('payload key configuration', () => {
  const key = randomBytes(32).toString('base64');
  const oldKey = randomBytes(32).toString('base64');

  test('unset: payloads stay plain, the codec server port defaults to 8888', () => {
    const config = loadConfig({});
    expect(config.payloadKey).toBeUndefined();
    expect(config.codecPort).toBe(8888);
  });

  test('a key, its id and old keys become the keyring', () => {
    const config = loadConfig({
      SNAPFLOW_PAYLOAD_KEY: key,
      SNAPFLOW_PAYLOAD_KEY_ID: 'k2',
      SNAPFLOW_PAYLOAD_OLD_KEYS: `k1:${oldKey},k0:${key.replace(/^./, 'A')}`,
      SNAPFLOW_CODEC_PORT: '9999',
    });
    expect(config.payloadKey?.id).toBe('k2');
    expect(config.payloadKey?.key.equals(Buffer.from(key, 'base64'))).toBe(true);
    expect(config.payloadKey?.oldKeys.map((k) => k.id)).toEqual(['k1', 'k0']);
    expect(config.payloadKey?.oldKeys[0]?.key.equals(Buffer.from(oldKey, 'base64'))).toBe(true);
    expect(config.codecPort).toBe(9999);
  });

  test.each([
    [
      { SNAPFLOW_PAYLOAD_KEY: randomBytes(16).toString('base64'), SNAPFLOW_PAYLOAD_KEY_ID: 'k1' },
      'SNAPFLOW_PAYLOAD_KEY',
      'openssl rand -base64 32',
    ],
    [
      { SNAPFLOW_PAYLOAD_KEY: randomBytes(33).toString('base64'), SNAPFLOW_PAYLOAD_KEY_ID: 'k1' },
      'SNAPFLOW_PAYLOAD_KEY',
      'openssl rand -base64 32',
    ],
    [
      { SNAPFLOW_PAYLOAD_KEY: 'not base64 at all, but forty-four chars!!!!!', SNAPFLOW_PAYLOAD_KEY_ID: 'k1' },
      'SNAPFLOW_PAYLOAD_KEY',
      'openssl rand -base64 32',
    ],
    [{ SNAPFLOW_PAYLOAD_KEY: key }, 'SNAPFLOW_PAYLOAD_KEY_ID', 'SNAPFLOW_PAYLOAD_KEY_ID=k1'],
    [{ SNAPFLOW_PAYLOAD_KEY_ID: 'k1' }, 'SNAPFLOW_PAYLOAD_KEY', 'openssl rand -base64 32'],
    [{ SNAPFLOW_PAYLOAD_OLD_KEYS: `k0:${oldKey}` }, 'SNAPFLOW_PAYLOAD_KEY', 'openssl rand -base64 32'],
    [{ SNAPFLOW_PAYLOAD_KEY: key, SNAPFLOW_PAYLOAD_KEY_ID: 'a key id with spaces' }, 'SNAPFLOW_PAYLOAD_KEY_ID', 'k1'],
    [{ SNAPFLOW_PAYLOAD_KEY: key, SNAPFLOW_PAYLOAD_KEY_ID: 'k1', SNAPFLOW_PAYLOAD_OLD_KEYS: oldKey }, 'SNAPFLOW_PAYLOAD_OLD_KEYS', 'k0:'],
    [
      { SNAPFLOW_PAYLOAD_KEY: key, SNAPFLOW_PAYLOAD_KEY_ID: 'k1', SNAPFLOW_PAYLOAD_OLD_KEYS: `k0:${randomBytes(16).toString('base64')}` },
      'SNAPFLOW_PAYLOAD_OLD_KEYS',
      'k0:',
    ],
    [
      { SNAPFLOW_PAYLOAD_KEY: key, SNAPFLOW_PAYLOAD_KEY_ID: 'k1', SNAPFLOW_PAYLOAD_OLD_KEYS: `k1:${oldKey}` },
      'SNAPFLOW_PAYLOAD_OLD_KEYS',
      'k0:',
    ],
    [{ SNAPFLOW_CODEC_PORT: '70000' }, 'SNAPFLOW_CODEC_PORT', '8888'],
  ])('%j is refused in one line naming %s, without echoing any key', (env, variable, example) => {
    const e = expectConfigError(env, variable, example);
    for (const value of Object.values(env).filter((v) => v.length >= 24)) {
      expect(`${e.message} ${e.hint}`).not.toContain(value);
    }
  });
});
