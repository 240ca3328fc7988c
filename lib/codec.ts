// Payload encryption: AES-256-GCM over each whole payload, so Temporal stores only ciphertext.
// Runs in the client and in the workers' main thread (never inside workflow code). Search attributes
// are not payloads of the codec and stay plain: never put a secret in one.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { PayloadKeyring } from './config';
import { SnapflowError } from './errors';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const CIPHER = 'aes-256-gcm';

const text = (bytes: Uint8Array | null | undefined): string | undefined => (bytes ? Buffer.from(bytes).toString('utf8') : undefined);

/**
 * encode: every payload becomes `{ encoding: binary/encrypted, encryption-key-id: <current id> }` with
 * data = iv(12) || ciphertext || tag(16) of the serialized original payload (metadata included).
 * decode: payloads in that encoding are decrypted with the key their id names (current or old); any
 * other payload passes through unchanged, so histories written before encryption was on stay readable.
 */
export class EncryptionCodec implements PayloadCodec {
  private readonly keys: Map<string, Buffer>;

  constructor(private readonly keyring: PayloadKeyring) {
    for (const { id, key } of [keyring, ...keyring.oldKeys]) {
      if (key.length !== 32) throw new Error(`payload key ${id} must be 32 bytes, got ${key.length}`);
    }
    this.keys = new Map([...keyring.oldKeys.map((k) => [k.id, k.key] as const), [keyring.id, keyring.key]]);
  }

  /** The id new payloads are encrypted with. */
  get keyId(): string {
    return this.keyring.id;
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(CIPHER, this.keyring.key, iv);
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(this.keyring.id) }, data };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => (text(payload.metadata?.encoding) === ENCRYPTED_ENCODING ? this.decrypt(payload) : payload));
  }

  private decrypt(payload: Payload): Payload {
    const id = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!id) throw unreadable('an encrypted payload has no encryption-key-id metadata');
    const key = this.keys.get(id);
    if (!key) {
      throw new SnapflowError({
        code: 'CONFIG_INVALID',
        field: 'SNAPFLOW_PAYLOAD_OLD_KEYS',
        message: `payload is encrypted with key id ${id}, which this process does not have (current ${this.keyring.id}${this.keyring.oldKeys.length ? `, old ${this.keyring.oldKeys.map((k) => k.id).join(', ')}` : ''})`,
        hint: `add that key as SNAPFLOW_PAYLOAD_OLD_KEYS=${id}:<its base64 key> (comma-separated with any others)`,
      });
    }
    const data = Buffer.from(payload.data ?? []);
    if (data.length < IV_BYTES + TAG_BYTES) throw unreadable(`a payload encrypted with key id ${id} is too short to be ciphertext`);
    const decipher = createDecipheriv(CIPHER, key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw unreadable(`a payload encrypted with key id ${id} failed authentication: it was altered, or the key behind id ${id} changed`);
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

function unreadable(message: string): SnapflowError {
  return new SnapflowError({
    code: 'INTERNAL',
    message,
    hint: 'a key is never replaced under the same id: rotate by giving the new key a new SNAPFLOW_PAYLOAD_KEY_ID and moving the old one to SNAPFLOW_PAYLOAD_OLD_KEYS',
  });
}

/** What Client and Worker take as `dataConverter`: the encryption codec when a key is configured, else the default. */
export function payloadDataConverter(keyring: PayloadKeyring | undefined): DataConverter | undefined {
  return keyring ? { payloadCodecs: [new EncryptionCodec(keyring)] } : undefined;
}
