// How every process reaches Temporal: the `temporal` CLI's own profile file and TEMPORAL_* variables, read once.
import { X509Certificate } from 'node:crypto';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';

type Env = Record<string, string | undefined>;

/** What `Connection.connect` and `NativeConnection.connect` both take. */
export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
}

/** Which transport and identity a connection uses; never a key, a token or certificate material. */
export interface TemporalTransport {
  transport: 'plain' | 'tls' | 'mtls' | 'api-key';
  address: string;
  namespace: string;
  /** Who the server sees: the client certificate's subject, or "API key". */
  identity?: string;
}

export interface TemporalConnection {
  options: TemporalConnectionOptions;
  namespace: string;
  describe: TemporalTransport;
}

/**
 * The profile (TEMPORAL_PROFILE in TEMPORAL_CONFIG_FILE, else the `temporal` CLI's default file) with the
 * TEMPORAL_* variables over it; `fallback` (snapflow's validated address and namespace) fills what neither sets.
 */
export function temporalConnection(env: Env, fallback: { address: string; namespace: string }): TemporalConnection {
  const set = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
  const profile = loadClientConfigProfile({ overrideEnvVars: set });
  const tls = toClientOptions(profile).connectionOptions.tls ?? undefined;
  const apiKey = profile.apiKey;
  const options: TemporalConnectionOptions = { address: profile.address ?? fallback.address };
  if (tls !== undefined) options.tls = tls;
  if (apiKey !== undefined) options.apiKey = apiKey;
  if (profile.grpcMeta && Object.keys(profile.grpcMeta).length > 0) options.metadata = profile.grpcMeta;
  const ns = profile.namespace ?? fallback.namespace;
  return { options, namespace: ns, describe: { address: options.address, namespace: ns, ...transportOf(tls, apiKey) } };
}

function transportOf(tls: TLSConfig | boolean | undefined, apiKey: string | undefined): Pick<TemporalTransport, 'transport' | 'identity'> {
  if (apiKey !== undefined) return { transport: 'api-key', identity: tls === false ? 'API key, TLS turned off' : 'API key' };
  const pair = typeof tls === 'object' ? tls.clientCertPair : undefined;
  if (pair) return { transport: 'mtls', identity: certificateSubject(pair.crt) };
  return { transport: tls ? 'tls' : 'plain' };
}

function certificateSubject(crt: Uint8Array): string {
  try {
    return `client certificate ${new X509Certificate(Buffer.from(crt)).subject.replace(/\n/g, ', ')}`;
  } catch {
    return 'client certificate';
  }
}

/** One line for `doctor` and error messages: "127.0.0.1:7233 namespace default, plain (no TLS)". */
export function describeTemporal(d: TemporalTransport): string {
  const how = {
    plain: 'plain (no TLS)',
    tls: 'TLS, no client identity',
    mtls: `mTLS as ${d.identity ?? 'client certificate'}`,
    'api-key': d.identity === 'API key' ? 'TLS with an API key' : (d.identity ?? 'API key'),
  }[d.transport];
  return `${d.address} namespace ${d.namespace}, ${how}`;
}
