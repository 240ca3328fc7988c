import { dockerConnection, loadConfig } from '../lib/config';
import { expectConfigError } from './support/config';

const storage = { SNAPFLOW_STORAGE_URL: 'http://127.0.0.1:5000', SNAPFLOW_STORAGE_USERNAME: 'u', SNAPFLOW_STORAGE_PASSWORD: 'p' };

test('an empty environment gives the local dev defaults, with storage and GitHub off', () => {
  const config = loadConfig({});
  expect(config.databaseUrl).toBe('postgres://postgres@127.0.0.1:5432/snapflow');
  expect(config.temporal).toMatchObject({ address: '127.0.0.1:7233', namespace: 'default', uiUrl: 'http://127.0.0.1:8233' });
  expect(config.temporal.connection.options).toEqual({ address: '127.0.0.1:7233' });
  expect(config.temporal.connection.describe).toEqual({ transport: 'plain', address: '127.0.0.1:7233', namespace: 'default' });
  expect(config.storage).toBeUndefined();
  expect(config.githubApp).toBeUndefined();
  expect(config.ghcrHost).toBe('ghcr.io');
});

test('storage settings resolve to the registry host used in image references', () => {
  expect(loadConfig(storage).storage).toEqual({
    url: 'http://127.0.0.1:5000',
    registryHost: '127.0.0.1:5000',
    username: 'u',
    password: 'p',
  });
});

test.each([
  [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', 'postgres://'],
  [{ TEMPORAL_ADDRESS: 'localhost' }, 'TEMPORAL_ADDRESS', '127.0.0.1:7233'],
  [{ TEMPORAL_NAMESPACE: 'bad namespace;' }, 'TEMPORAL_NAMESPACE', 'default'],
  [{ SNAPFLOW_HOST_ID: 'Host_A' }, 'SNAPFLOW_HOST_ID', 'host-a'],
  [{ DOCKER_HOST: '/var/run/docker.sock' }, 'DOCKER_HOST', 'unix:///var/run/docker.sock'],
  [{ SNAPFLOW_STORAGE_URL: 'http://127.0.0.1:5000/some/path' }, 'SNAPFLOW_STORAGE_URL', 'http://127.0.0.1:5000'],
  [{ SNAPFLOW_STORAGE_URL: 'http://127.0.0.1:5000' }, 'SNAPFLOW_STORAGE_USERNAME', 'snapflow'],
  [{ ...storage, SNAPFLOW_STORAGE_PASSWORD: '' }, 'SNAPFLOW_STORAGE_PASSWORD', 'SNAPFLOW_STORAGE_PASSWORD='],
  [{ GITHUB_APP_ID: 'my-app' }, 'GITHUB_APP_ID', '123456'],
  [{ GITHUB_APP_ID: '42' }, 'GITHUB_APP_PRIVATE_KEY', 'GITHUB_APP_PRIVATE_KEY='],
  [{ GITHUB_APP_PRIVATE_KEY: '-----BEGIN RSA PRIVATE KEY-----' }, 'GITHUB_APP_ID', '123456'],
  [{ SNAPFLOW_GHCR_HOST: 'https://ghcr.io' }, 'SNAPFLOW_GHCR_HOST', 'ghcr.io'],
])('%j is refused in one line naming %s with an example', (env, variable, example) => {
  expectConfigError(env, variable, example);
});

test('DOCKER_HOST becomes dockerode connection options', () => {
  expect(dockerConnection('unix:///run/docker.sock')).toEqual({ socketPath: '/run/docker.sock' });
  expect(dockerConnection('tcp://127.0.0.1:2375')).toEqual({ host: '127.0.0.1', port: 2375 });
});
