import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/config';
import { describeTemporal } from '../lib/temporalConnection';
import { expectConfigError } from './support/config';

let dir: string;
let certPath: string;
let keyPath: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'snapflow-temporal-tls-'));
  certPath = join(dir, 'client.pem');
  keyPath = join(dir, 'client.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=snapflow-worker/O=Example Ops',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const apiKey = 'tmprl-api-key-0123456789abcdef';
/** No profile file is read unless a test names one. */
const base = { TEMPORAL_CONFIG_FILE: '/nonexistent/temporal.toml' };

test('without TLS settings the connection is plain and says so', () => {
  const { connection } = loadConfig(base).temporal;
  expect(connection.options).toEqual({ address: '127.0.0.1:7233' });
  expect(describeTemporal(connection.describe)).toBe('127.0.0.1:7233 namespace default, plain (no TLS)');
});

test('TEMPORAL_TLS with a CA and server name gives server-verified TLS and no client identity', () => {
  const { connection } = loadConfig({
    ...base,
    TEMPORAL_ADDRESS: 'temporal.example.internal:7233',
    TEMPORAL_NAMESPACE: 'prod',
    TEMPORAL_TLS: 'true',
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: certPath,
    TEMPORAL_TLS_SERVER_NAME: 'temporal.example.internal',
  }).temporal;
  expect(connection.options.address).toBe('temporal.example.internal:7233');
  expect(connection.namespace).toBe('prod');
  expect(connection.options.tls).toMatchObject({
    serverNameOverride: 'temporal.example.internal',
    serverRootCACertificate: readFileSync(certPath),
  });
  expect(connection.describe).toEqual({ transport: 'tls', address: 'temporal.example.internal:7233', namespace: 'prod' });
});

test('a client certificate and key give mTLS, described by the certificate subject and nothing secret', () => {
  const { connection } = loadConfig({
    ...base,
    TEMPORAL_ADDRESS: 'prod.a1b2c.tmprl.cloud:7233',
    TEMPORAL_NAMESPACE: 'prod.a1b2c',
    TEMPORAL_TLS_CLIENT_CERT_PATH: certPath,
    TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath,
  }).temporal;
  expect(connection.options.tls).toMatchObject({ clientCertPair: { crt: readFileSync(certPath), key: readFileSync(keyPath) } });
  expect(connection.describe.transport).toBe('mtls');
  expect(connection.describe.identity).toContain('CN=snapflow-worker');
  const line = describeTemporal(connection.describe);
  expect(line).toMatch(/^prod\.a1b2c\.tmprl\.cloud:7233 namespace prod\.a1b2c, mTLS as client certificate .*CN=snapflow-worker/);
  const shown = JSON.stringify(connection.describe) + line;
  expect(shown).not.toContain('PRIVATE KEY');
  expect(shown).not.toContain('BEGIN CERTIFICATE');
  expect(shown).not.toContain(readFileSync(keyPath, 'utf8').split('\n')[1]);
});

test('TEMPORAL_API_KEY turns TLS on, passes the key, and the description never contains it', () => {
  const { connection } = loadConfig({
    ...base,
    TEMPORAL_ADDRESS: 'us-east-1.aws.api.temporal.io:7233',
    TEMPORAL_NAMESPACE: 'prod.a1b2c',
    TEMPORAL_API_KEY: apiKey,
  }).temporal;
  expect(connection.options).toEqual({ address: 'us-east-1.aws.api.temporal.io:7233', apiKey, tls: true });
  expect(connection.describe).toEqual({
    transport: 'api-key',
    address: 'us-east-1.aws.api.temporal.io:7233',
    namespace: 'prod.a1b2c',
    identity: 'API key',
  });
  const line = describeTemporal(connection.describe);
  expect(line).toBe('us-east-1.aws.api.temporal.io:7233 namespace prod.a1b2c, TLS with an API key');
  expect(JSON.stringify(connection.describe) + line).not.toContain(apiKey);
});

test('a profile from TEMPORAL_CONFIG_FILE is used, and TEMPORAL_* variables win over it', () => {
  const file = join(dir, 'temporal.toml');
  writeFileSync(
    file,
    [
      '[profile.prod]',
      'address = "temporal.prod.internal:7233"',
      'namespace = "snapflow-prod"',
      `api_key = "${apiKey}"`,
      '[profile.prod.grpc_meta]',
      'x-team = "platform"',
    ].join('\n'),
  );
  const fromFile = loadConfig({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' }).temporal;
  expect(fromFile.address).toBe('temporal.prod.internal:7233');
  expect(fromFile.namespace).toBe('snapflow-prod');
  expect(fromFile.connection.options).toEqual({
    address: 'temporal.prod.internal:7233',
    apiKey,
    tls: true,
    metadata: { 'x-team': 'platform' },
  });
  const overridden = loadConfig({
    TEMPORAL_CONFIG_FILE: file,
    TEMPORAL_PROFILE: 'prod',
    TEMPORAL_NAMESPACE: 'staging',
    TEMPORAL_TLS: 'false',
  }).temporal;
  expect(overridden.namespace).toBe('staging');
  expect(overridden.connection.options.tls).toBe(false);
  expect(describeTemporal(overridden.connection.describe)).toBe('temporal.prod.internal:7233 namespace staging, API key, TLS turned off');
});

test('an unknown profile, a missing certificate file, an unreadable profile file or a bad profile address is refused in one line', () => {
  expectConfigError({ ...base, TEMPORAL_PROFILE: 'nope' }, 'TEMPORAL_PROFILE', 'prod');
  expectConfigError(
    { ...base, TEMPORAL_TLS_CLIENT_CERT_PATH: join(dir, 'missing.pem'), TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath },
    'TEMPORAL_TLS_CLIENT_CERT_PATH',
    '/etc/snapflow/temporal.pem',
  );
  expectConfigError({ TEMPORAL_CONFIG_FILE: dir }, 'TEMPORAL_CONFIG_FILE', 'temporal.toml');
  const file = join(dir, 'bad.toml');
  writeFileSync(file, '[profile.default]\naddress = "no-port"\n');
  expectConfigError({ TEMPORAL_CONFIG_FILE: file }, 'TEMPORAL_ADDRESS', '127.0.0.1:7233');
});
