// Which registry hosts reach snapshot storage: decided by address and port, not by spelling.
import { canonicalAddress, isSnapshotStorage, refuseStorageSource } from '../lib/registryAddress';

const storage = { registryHost: '127.0.0.1:5000', url: 'http://127.0.0.1:5000' };

test.each([
  ['127.0.0.1', '127.0.0.1'],
  ['127.1', '127.0.0.1'],
  ['2130706433', '127.0.0.1'],
  ['0x7f.1', '127.0.0.1'],
  ['0x7f000001', '127.0.0.1'],
  ['0177.0.0.1', '127.0.0.1'],
  ['10.1.258', '10.1.1.2'],
  ['[::1]', '0:0:0:0:0:0:0:1'],
  ['::ffff:7f00:1', '127.0.0.1'],
  ['::ffff:127.0.0.1', '127.0.0.1'],
  ['[0:0:0:0:0:ffff:a00:1]', '10.0.0.1'],
  ['FE80::1', 'fe80:0:0:0:0:0:0:1'],
])('%s is the address %s', (text, address) => {
  expect(canonicalAddress(text)).toBe(address);
});

test.each(['ghcr.io', 'localhost', '256.0.0.1', '4294967296', '08.1', '1.2.3.4.5', '::1::', '1:2:3:4:5:6:7:8:9', 'cafe'])(
  '%s is not an address literal',
  (text) => expect(canonicalAddress(text)).toBeUndefined(),
);

test.each([
  ['[::1]:5000', true],
  ['[::]:5000', true],
  ['0.0.0.0:5000', true],
  ['localhost:5000', true],
  ['registry.localhost:5000', true],
  ['127.0.0.1:5001', false],
  ['127.0.0.1', false], // no port: 443 or 80, not 5000
  ['10.0.0.1:5000', false],
  ['ghcr.io', false],
])('a registry %s is storage at 127.0.0.1:5000: %s', (registry, expected) => {
  expect(isSnapshotStorage(registry, storage)).toBe(expected);
});

test('default ports follow the scheme of storage and both defaults for an image', () => {
  const https = { registryHost: 'reg.example', url: 'https://reg.example' };
  expect(isSnapshotStorage('reg.example', https)).toBe(true);
  expect(isSnapshotStorage('reg.example:443', https)).toBe(true);
  expect(isSnapshotStorage('REG.example:443', https)).toBe(true);
  expect(isSnapshotStorage('reg.example:80', https)).toBe(false);
  expect(isSnapshotStorage('reg.example:80', { registryHost: 'reg.example', url: 'http://reg.example' })).toBe(true);
});

test('names count by their addresses when resolved, and this machine’s addresses are one machine', () => {
  const remote = { registryHost: 'storage.internal:5000', url: 'http://storage.internal:5000' };
  expect(isSnapshotStorage('10.0.0.5:5000', remote)).toBe(false); // unresolved: the spelling only
  expect(isSnapshotStorage('10.0.0.5:5000', remote, { addresses: { 'storage.internal': ['10.0.0.5'] } })).toBe(true);
  expect(
    isSnapshotStorage('alias.example:5000', remote, {
      addresses: { 'alias.example': ['::ffff:10.0.0.5'], 'storage.internal': ['10.0.0.5'] },
    }),
  ).toBe(true);
  expect(isSnapshotStorage('10.0.0.6:5000', remote, { addresses: { 'storage.internal': ['10.0.0.5'] } })).toBe(false);
  // Storage on this machine's own address is reached through loopback too.
  const local = { registryHost: '192.168.1.4:5000', url: 'http://192.168.1.4:5000' };
  expect(isSnapshotStorage('127.0.0.1:5000', local)).toBe(false);
  expect(isSnapshotStorage('127.0.0.1:5000', local, { localAddresses: ['127.0.0.1', '192.168.1.4'] })).toBe(true);
});

test('the refusal resolves names on both sides and names the field and the fix', async () => {
  const resolve = async (name: string) => ({ 'my-host': ['127.0.1.1'] })[name] ?? [];
  await expect(refuseStorageSource({ image: 'my-host:5000/x/y:v1', registry: 'my-host:5000', storage, resolve })).rejects.toMatchObject({
    code: 'VALIDATION_FAILED',
    field: 'image',
    hint: 'name the image in the registry it was published to',
  });
  await expect(refuseStorageSource({ image: 'other:5000/x/y:v1', registry: 'other:5000', storage, resolve })).resolves.toBeUndefined();
  // A resolver that fails counts the name by its spelling.
  const broken = async () => Promise.reject(new Error('no DNS'));
  await expect(refuseStorageSource({ image: 'x:5000/y:v1', registry: 'x:5000', storage, resolve: broken })).resolves.toBeUndefined();
});
