// One zod-validated view of the environment. A bad value is one line naming the variable and an example.
import { existsSync } from 'node:fs';
import { z } from 'zod';
import { SnapflowError } from './errors';
import { temporalConnection, type TemporalConnection } from './temporalConnection';
import { SLUG_REGEX } from './validation/slugs';

type Env = Record<string, string | undefined>;

/** A payload key id: short, printable, safe in payload metadata and error messages. */
const keyId = '[A-Za-z0-9._-]{1,32}';
/** 32 bytes in standard base64 is 43 characters and one `=`. */
const key32 = '[A-Za-z0-9+/]{43}=';

/** Each variable: its schema, and the example we print when it is wrong. */
const variables = {
  DATABASE_URL: {
    schema: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// URL'),
    example: 'postgres://postgres@127.0.0.1:5432/snapflow',
    fallback: 'postgres://postgres@127.0.0.1:5432/snapflow',
  },
  TEMPORAL_ADDRESS: {
    schema: z.string().regex(/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/, 'must be host:port'),
    example: '127.0.0.1:7233',
    fallback: '127.0.0.1:7233',
  },
  TEMPORAL_NAMESPACE: {
    schema: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be a Temporal namespace name'),
    example: 'default',
    fallback: 'default',
  },
  TEMPORAL_UI_URL: {
    schema: z.string().url('must be a URL'),
    example: 'http://127.0.0.1:8233',
    fallback: 'http://127.0.0.1:8233',
  },
  SNAPFLOW_HOST_ID: {
    schema: z.string().regex(SLUG_REGEX, 'must be a lowercase slug (a-z, 0-9, -)'),
    example: 'host-a',
    fallback: 'local',
  },
  SNAPFLOW_HOST_MEMORY_MIB: {
    schema: z.string().regex(/^[1-9]\d{2,7}$/, 'must be a whole number of MiB (at least 100)'),
    example: '16384',
    fallback: undefined,
  },
  SNAPFLOW_VM_MEMORY_MIB: {
    schema: z.string().regex(/^[1-9]\d{2,6}$/, 'must be a whole number of MiB (at least 128)'),
    example: '512',
    fallback: undefined,
  },
  SNAPFLOW_LOG_CAP_BYTES: {
    schema: z.string().regex(/^[1-9]\d{3,14}$/, 'must be a whole number of bytes (at least 1000)'),
    example: '1073741824',
    fallback: '1073741824',
  },
  SNAPFLOW_LOG_RETENTION_DAYS: {
    schema: z.string().regex(/^[1-9]\d{0,4}$/, 'must be a whole number of days (at least 1)'),
    example: '30',
    fallback: '30',
  },
  SNAPFLOW_HOST_CACHE_KEEP: {
    schema: z.string().regex(/^\d{1,4}$/, 'must be a whole number (0 keeps only defaults, pins and live sessions)'),
    example: '4',
    fallback: '4',
  },
  DOCKER_HOST: {
    schema: z.string().regex(/^(unix:\/\/\/\S+|tcp:\/\/[^\s:]+:\d{1,5})$/, 'must be unix:///path/docker.sock or tcp://host:port'),
    example: 'unix:///var/run/docker.sock',
    fallback: 'unix:///var/run/docker.sock',
  },
  SNAPFLOW_STORAGE_URL: {
    schema: z.string().regex(/^https?:\/\/[^\s/]+\/?$/, 'must be http(s)://host:port of an OCI registry, no path'),
    example: 'http://127.0.0.1:5000',
    fallback: undefined,
  },
  SNAPFLOW_STORAGE_USERNAME: { schema: z.string().min(1), example: 'snapflow', fallback: undefined },
  SNAPFLOW_STORAGE_PASSWORD: { schema: z.string().min(1), example: 'a-long-random-password', fallback: undefined },
  /** Where the control worker finds the storage registry's own config, for `snapflow storage gc`; unset → gc is off. */
  SNAPFLOW_REGISTRY_CONFIG: {
    schema: z.string().regex(/^\/\S+$/, 'must be an absolute path to the registry config.yml'),
    example: '/etc/docker/registry/config.yml',
    fallback: undefined,
  },
  SNAPFLOW_GHCR_HOST: {
    schema: z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?$/, 'must be a registry host[:port]'),
    example: 'ghcr.io',
    fallback: 'ghcr.io',
  },
  SNAPFLOW_SKILLS_ROOT: {
    schema: z
      .string()
      .regex(/^(\/[\w.@+-]+)+\/?$/, 'must be an absolute directory path (not /)')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ..'),
    example: '/srv/snapflow/skills',
    fallback: undefined,
  },
  SNAPFLOW_REPOS_ROOT: {
    schema: z
      .string()
      .regex(/^(\/[\w.@+-]+)+\/?$/, 'must be an absolute directory path (not /)')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ..'),
    example: '/srv/snapflow/repos',
    fallback: undefined,
  },
  SNAPFLOW_REPO_HOSTS: {
    schema: z.string().regex(/^[A-Za-z0-9.-]+(:\d{1,5})?(,[A-Za-z0-9.-]+(:\d{1,5})?)*$/, 'must be a comma-separated list of host[:port]'),
    example: 'github.com,git.example.com',
    fallback: undefined,
  },
  SNAPFLOW_ACTOR: {
    schema: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'must be a user id (letters, digits, . _ @ -)'),
    example: 'alice@example.com',
    fallback: 'operator',
  },
  SNAPFLOW_HOST_ACTOR: {
    schema: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/, 'must be a user id (letters, digits, . _ @ -)'),
    example: 'host-worker',
    fallback: 'host-worker',
  },
  SNAPFLOW_OPERATORS: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}(,[A-Za-z0-9][A-Za-z0-9._@-]{0,127})*$/, 'must be a comma-separated list of user ids'),
    example: 'operator,alice@example.com',
    fallback: 'operator',
  },
  GITHUB_APP_ID: { schema: z.string().regex(/^\d+$/, 'must be the numeric App id'), example: '123456', fallback: undefined },
  GITHUB_APP_PRIVATE_KEY: {
    schema: z.string().includes('PRIVATE KEY', { message: 'must be a PEM private key' }),
    example: '"$(cat app.private-key.pem)"',
    fallback: undefined,
  },
  GITHUB_API_URL: {
    schema: z.string().url('must be a URL'),
    example: 'https://api.github.com',
    fallback: 'https://api.github.com',
  },
  SNAPFLOW_PAYLOAD_KEY: {
    schema: z.string().regex(new RegExp(`^${key32}$`), 'must be exactly 32 bytes, base64 (openssl rand -base64 32)'),
    example: '"$(openssl rand -base64 32)"',
    fallback: undefined,
  },
  SNAPFLOW_PAYLOAD_KEY_ID: {
    schema: z.string().regex(new RegExp(`^${keyId}$`), 'must be a short key id (letters, digits, . _ -; at most 32)'),
    example: 'k1',
    fallback: undefined,
  },
  SNAPFLOW_PAYLOAD_OLD_KEYS: {
    schema: z
      .string()
      .regex(
        new RegExp(`^${keyId}:${key32}(,${keyId}:${key32})*$`),
        'must be id:key pairs separated by commas, each key exactly 32 bytes, base64',
      ),
    example: 'k0:<the old key, base64>',
    fallback: undefined,
  },
  SNAPFLOW_CODEC_PORT: {
    schema: z
      .string()
      .regex(/^[1-9]\d{0,4}$/, 'must be a TCP port')
      .refine((port) => Number(port) <= 65535, 'must be a TCP port (at most 65535)'),
    example: '8888',
    fallback: '8888',
  },
  SNAPFLOW_LOG_LEVEL: {
    schema: z.enum(['trace', 'debug', 'info', 'warn', 'error'], 'must be one of trace, debug, info, warn, error'),
    example: 'info',
    fallback: 'info',
  },
  SNAPFLOW_ACTOR_KEY: {
    schema: z.string().regex(/^[A-Za-z0-9+/=_-]{32,200}$/, 'must be at least 32 characters of base64 (openssl rand -base64 32)'),
    example: '"$(openssl rand -base64 32)"',
    fallback: undefined,
  },
  SNAPFLOW_API_ADDRESS: {
    schema: z.string().regex(/^([A-Za-z0-9.\-[\]:]+:)?\d{1,5}$/, 'must be host:port, or a port on 127.0.0.1'),
    example: '127.0.0.1:8787',
    fallback: '127.0.0.1:8787',
  },
  SNAPFLOW_API_CORS_ORIGINS: {
    schema: z
      .string()
      .regex(/^https?:\/\/[^\s,/]+(,https?:\/\/[^\s,/]+)*$/, 'must be a comma-separated list of origins (scheme://host[:port])'),
    example: 'https://console.example.com',
    fallback: undefined,
  },
  SNAPFLOW_METRICS_ADDRESS: {
    schema: z.string().regex(/^([A-Za-z0-9.\-[\]:]+:)?\d{1,5}$/, 'must be host:port, or a port on 127.0.0.1'),
    example: '127.0.0.1:9464',
    fallback: undefined,
  },
} as const;

type VariableName = keyof typeof variables;

export interface StorageConfig {
  url: string;
  /** host[:port] as used in image references. */
  registryHost: string;
  username: string;
  password: string;
}

export interface PreloadLimits {
  /** Skills directories must be under this host directory; unset → embedding skills is disabled. */
  skillsRoot?: string;
  /** Local repositories (paths, file:// URLs) must be under this host directory; unset → none are cloned. */
  reposRoot?: string;
  /** Hosts (host or host:port) remote repositories may be cloned from; empty → none. */
  repoHosts: string[];
}

export interface GithubAppConfig {
  appId: string;
  privateKey: string;
  apiUrl: string;
}

/** Payload encryption keys: `id`/`key` encrypt and decrypt, `oldKeys` only decrypt (rotation). */
export interface PayloadKeyring {
  id: string;
  /** 32 bytes, AES-256-GCM. */
  key: Buffer;
  oldKeys: Array<{ id: string; key: Buffer }>;
}

export interface Config {
  databaseUrl: string;
  /** address and namespace as resolved with the profile file and TEMPORAL_* variables; `connection` is what every connect uses. */
  temporal: { address: string; namespace: string; uiUrl: string; connection: TemporalConnection };
  /** `vmMemoryMiB`: RAM of every vm sandbox on this host instead of its size's (small machines for tests and laptops). */
  host: { id: string; dockerHost: string; memoryLimitMiB?: number; vmMemoryMiB?: number };
  /** Snapshot storage; undefined means golden features are disabled. */
  storage?: StorageConfig;
  /** SNAPFLOW_REGISTRY_CONFIG: the storage registry's config file, read by `registry garbage-collect` on the control worker. */
  registryConfig?: string;
  ghcrHost: string;
  /** Where golden builds may take repositories and skills from (checked at config time and again on the host). */
  preload: PreloadLimits;
  /** Who the CLI (and a client without an explicit actor) acts as. */
  actor: string;
  /** The service actor host workers announce themselves as; it may refresh a host's facts and nothing else. */
  hostActor: string;
  /** Platform operators: may act in every workspace and the system workspace, whatever the plan. */
  operators: string[];
  /** Cached snapshots each host keeps besides defaults, pins and live sessions (least recently used go first). */
  hostCacheKeep: number;
  /** Job and build logs: bytes kept per log before the cut, and days a closed log is kept. */
  logs: { capBytes: number; retentionDays: number };
  /** GitHub App; undefined means private GHCR images cannot be authenticated. */
  githubApp?: GithubAppConfig;
  /** Payload encryption (lib/codec.ts); undefined means payloads are stored as plain JSON. */
  payloadKey?: PayloadKeyring;
  /** Port of the codec server the Temporal UI decrypts through (`npm run codec-server`), on 127.0.0.1. */
  codecPort: number;
  /** Workers log JSON lines at this level and above. */
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  /** host:port a worker serves Prometheus metrics on (/metrics); undefined means no metrics endpoint. */
  metricsAddress?: string;
  /**
   * Signs (client, API, host workers) and verifies (control worker) the actor claim in every workflow request;
   * undefined means claims are neither made nor checked (a dev stack: doctor says so).
   */
  actorKey?: Buffer;
  /** The HTTP API: where it listens, and the browser origins it answers (none by default). */
  api: { address: string; corsOrigins: string[] };
}

export class ConfigError extends SnapflowError {
  constructor(variable: string, problem: string, example: string) {
    super({
      code: 'CONFIG_INVALID',
      field: variable,
      message: `${variable} ${problem}`,
      hint: `set it like ${variable}=${example}`,
    });
  }
}

function read(env: Env, name: VariableName): string | undefined {
  const spec = variables[name];
  const raw = env[name];
  const value = raw === undefined || raw === '' ? spec.fallback : raw;
  if (value === undefined) return undefined;
  const parsed = spec.schema.safeParse(value);
  if (!parsed.success) {
    throw new ConfigError(name, parsed.error.issues[0]?.message ?? 'is invalid', spec.example);
  }
  return parsed.data;
}

function required(env: Env, name: VariableName, because: string): string {
  const value = read(env, name);
  if (value === undefined) throw new ConfigError(name, `is required ${because}`, variables[name].example);
  return value;
}

/** The current key (id + key, both or neither) and the older ones kept for reading old histories. */
function payloadKeyring(env: Env): PayloadKeyring | undefined {
  const key = read(env, 'SNAPFLOW_PAYLOAD_KEY');
  const id = read(env, 'SNAPFLOW_PAYLOAD_KEY_ID');
  const old = read(env, 'SNAPFLOW_PAYLOAD_OLD_KEYS');
  if (!key) {
    if (id) required(env, 'SNAPFLOW_PAYLOAD_KEY', 'when SNAPFLOW_PAYLOAD_KEY_ID is set');
    if (old) required(env, 'SNAPFLOW_PAYLOAD_KEY', 'when SNAPFLOW_PAYLOAD_OLD_KEYS is set');
    return undefined;
  }
  const currentId = required(env, 'SNAPFLOW_PAYLOAD_KEY_ID', 'when SNAPFLOW_PAYLOAD_KEY is set');
  const oldKeys = (old ? old.split(',') : []).map((pair) => {
    const [oldId = '', oldKey = ''] = pair.split(':');
    return { id: oldId, key: Buffer.from(oldKey, 'base64') };
  });
  const ids = [currentId, ...oldKeys.map((k) => k.id)];
  const repeated = ids.find((candidate, i) => ids.indexOf(candidate) !== i);
  if (repeated)
    throw new ConfigError(
      'SNAPFLOW_PAYLOAD_OLD_KEYS',
      `repeats key id ${repeated} (each id names one key)`,
      variables.SNAPFLOW_PAYLOAD_OLD_KEYS.example,
    );
  return { id: currentId, key: Buffer.from(key, 'base64'), oldKeys };
}

const trimSlash = (path: string | undefined): string | undefined => path?.replace(/\/+$/, '');

/** snapflow's defaults under the `temporal` CLI's profile and TEMPORAL_* variables; a profile value is validated like the variable. */
function temporalSettings(env: Env): Config['temporal'] {
  const fallback = { address: required(env, 'TEMPORAL_ADDRESS', ''), namespace: required(env, 'TEMPORAL_NAMESPACE', '') };
  let connection: TemporalConnection;
  try {
    connection = temporalConnection(env, fallback);
  } catch (err) {
    const message = (err as Error).message.split('\n')[0] ?? '';
    const path = (err as NodeJS.ErrnoException).path;
    const pathVariable = Object.keys(env).find((k) => k.startsWith('TEMPORAL_TLS_') && path !== undefined && env[k] === path);
    const name = pathVariable ?? (env.TEMPORAL_PROFILE ? 'TEMPORAL_PROFILE' : 'TEMPORAL_CONFIG_FILE');
    const example = pathVariable
      ? '/etc/snapflow/temporal.pem'
      : name === 'TEMPORAL_PROFILE'
        ? 'prod'
        : '~/.config/temporalio/temporal.toml';
    throw new ConfigError(name, `cannot be used: ${message}`, example);
  }
  const address = read({ TEMPORAL_ADDRESS: connection.options.address }, 'TEMPORAL_ADDRESS') ?? fallback.address;
  const namespace = read({ TEMPORAL_NAMESPACE: connection.namespace }, 'TEMPORAL_NAMESPACE') ?? fallback.namespace;
  return { address, namespace, uiUrl: required(env, 'TEMPORAL_UI_URL', ''), connection };
}

/** Reads and validates the whole configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const storageUrl = read(env, 'SNAPFLOW_STORAGE_URL');
  const appId = read(env, 'GITHUB_APP_ID');
  const privateKey = read(env, 'GITHUB_APP_PRIVATE_KEY');
  if (privateKey && !appId) required(env, 'GITHUB_APP_ID', 'when GITHUB_APP_PRIVATE_KEY is set');
  const temporal = temporalSettings(env);
  return {
    databaseUrl: required(env, 'DATABASE_URL', ''),
    temporal,
    host: {
      id: required(env, 'SNAPFLOW_HOST_ID', ''),
      dockerHost: required(env, 'DOCKER_HOST', ''),
      memoryLimitMiB: read(env, 'SNAPFLOW_HOST_MEMORY_MIB') === undefined ? undefined : Number(read(env, 'SNAPFLOW_HOST_MEMORY_MIB')),
      vmMemoryMiB: read(env, 'SNAPFLOW_VM_MEMORY_MIB') === undefined ? undefined : Number(read(env, 'SNAPFLOW_VM_MEMORY_MIB')),
    },
    storage: storageUrl
      ? {
          url: storageUrl.replace(/\/$/, ''),
          registryHost: new URL(storageUrl).host,
          username: required(env, 'SNAPFLOW_STORAGE_USERNAME', 'when SNAPFLOW_STORAGE_URL is set'),
          password: required(env, 'SNAPFLOW_STORAGE_PASSWORD', 'when SNAPFLOW_STORAGE_URL is set'),
        }
      : undefined,
    registryConfig: read(env, 'SNAPFLOW_REGISTRY_CONFIG'),
    ghcrHost: required(env, 'SNAPFLOW_GHCR_HOST', ''),
    preload: {
      skillsRoot: trimSlash(read(env, 'SNAPFLOW_SKILLS_ROOT')),
      reposRoot: trimSlash(read(env, 'SNAPFLOW_REPOS_ROOT')),
      repoHosts: (read(env, 'SNAPFLOW_REPO_HOSTS') ?? '')
        .split(',')
        .filter(Boolean)
        .map((h) => h.toLowerCase()),
    },
    actor: required(env, 'SNAPFLOW_ACTOR', ''),
    operators: required(env, 'SNAPFLOW_OPERATORS', '').split(','),
    hostActor: required(env, 'SNAPFLOW_HOST_ACTOR', ''),
    hostCacheKeep: Number(required(env, 'SNAPFLOW_HOST_CACHE_KEEP', '')),
    logs: {
      capBytes: Number(required(env, 'SNAPFLOW_LOG_CAP_BYTES', '')),
      retentionDays: Number(required(env, 'SNAPFLOW_LOG_RETENTION_DAYS', '')),
    },
    githubApp: appId
      ? {
          appId,
          privateKey: required(env, 'GITHUB_APP_PRIVATE_KEY', 'when GITHUB_APP_ID is set'),
          apiUrl: required(env, 'GITHUB_API_URL', ''),
        }
      : undefined,
    payloadKey: payloadKeyring(env),
    codecPort: Number(required(env, 'SNAPFLOW_CODEC_PORT', '')),
    logLevel: required(env, 'SNAPFLOW_LOG_LEVEL', '') as Config['logLevel'],
    metricsAddress: metricsAddress(read(env, 'SNAPFLOW_METRICS_ADDRESS')),
    actorKey: read(env, 'SNAPFLOW_ACTOR_KEY') === undefined ? undefined : Buffer.from(read(env, 'SNAPFLOW_ACTOR_KEY')!, 'utf8'),
    api: {
      address: metricsAddress(read(env, 'SNAPFLOW_API_ADDRESS'))!,
      corsOrigins: (read(env, 'SNAPFLOW_API_CORS_ORIGINS') ?? '').split(',').filter(Boolean),
    },
  };
}

/** A bare port means loopback: metrics are not published beyond the machine unless an address says so. */
function metricsAddress(value: string | undefined): string | undefined {
  return value === undefined || value.includes(':') ? value : `127.0.0.1:${value}`;
}

/** Dockerode connection options from a DOCKER_HOST value. */
export function dockerConnection(dockerHost: string): { socketPath: string } | { host: string; port: number } {
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) };
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return { host: url.hostname, port: Number(url.port) };
}

/**
 * Entry points (CLI, workers, dev stack) read a project-local `.env` when present; variables already
 * set in the environment win. Library code never does this implicitly.
 */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}
