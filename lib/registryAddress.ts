// Whether a registry named in an image reference is snapshot storage: decided by the addresses and ports it
// reaches, not by how it is spelled (`127.1:5000`, `[::ffff:7f00:1]:5000` and `localhost:5000` are one registry).
// Pure: name resolution is passed in by the caller (dns.lookup on a host worker or in the client), or skipped.
import { SnapflowError } from './errors';
import { quoteInput } from './imageRef';

/** Snapshot storage as configured: its registry host (`host[:port]`) and, for its default port, its URL. */
export interface StorageEndpoint {
  registryHost: string;
  url?: string;
}

/** What resolving names adds: a name's addresses, and the addresses that are this machine's own. */
export interface Resolution {
  addresses?: Record<string, readonly string[]>;
  localAddresses?: readonly string[];
}

/** Resolves a host name to every address it has; an unknown name resolves to none. */
export type ResolveAll = (name: string) => Promise<string[]>;

interface Endpoint {
  /** A lowercased name without a trailing dot, or undefined for an address literal. */
  name?: string;
  addresses: Set<string>;
  ports: Set<number>;
}

/** `a`, `a.b`, `a.b.c` or `a.b.c.d`, each part decimal, octal (`0…`) or hex (`0x…`): every form inet_aton accepts. */
function parseIpv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length > 4 || parts.some((p) => !/^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$/i.test(p))) return undefined;
  const values = parts.map((p) =>
    /^0x/i.test(p) ? parseInt(p.slice(2) || '0', 16) : p.length > 1 && p.startsWith('0') ? parseInt(p, 8) : Number(p),
  );
  const last = values.pop()!;
  if (values.some((v) => v > 255) || last >= 2 ** (8 * (4 - values.length))) return undefined;
  const bytes = [...values];
  for (let i = 3 - values.length; i >= 0; i--) bytes.push(Math.floor(last / 2 ** (8 * i)) % 256);
  return bytes;
}

/** Eight 16-bit groups, or undefined; `::` and a trailing dotted IPv4 are expanded. */
function parseIpv6(text: string): number[] | undefined {
  if (!/^[0-9a-f:.]+$/i.test(text) || text.split('::').length > 2) return undefined;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const groups = (side: string): number[] | undefined => {
    if (side === '') return [];
    const out: number[] = [];
    const pieces = side.split(':');
    for (const [i, piece] of pieces.entries()) {
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = /^\d+\.\d+\.\d+\.\d+$/.test(piece) ? parseIpv4(piece) : undefined;
        if (!v4) return undefined;
        out.push(v4[0]! * 256 + v4[1]!, v4[2]! * 256 + v4[3]!);
      } else if (/^[0-9a-f]{1,4}$/i.test(piece)) out.push(parseInt(piece, 16));
      else return undefined;
    }
    return out;
  };
  const front = groups(head!);
  const back = tail === undefined ? [] : groups(tail);
  if (!front || !back) return undefined;
  if (tail === undefined) return front.length === 8 ? front : undefined;
  const missing = 8 - front.length - back.length;
  return missing >= 1 ? [...front, ...new Array<number>(missing).fill(0), ...back] : undefined;
}

/**
 * One spelling per address: IPv4 dotted decimal (also for an IPv4-mapped IPv6 address), IPv6 as eight lowercase
 * hex groups. Undefined when `text` is not an address literal (then it is a name).
 */
export function canonicalAddress(text: string): string | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const v4 = bare.includes(':') ? undefined : parseIpv4(bare);
  if (v4) return v4.join('.');
  const v6 = bare.includes(':') ? parseIpv6(bare) : undefined;
  if (!v6) return undefined;
  if (v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff) return [v6[6]! >> 8, v6[6]! & 255, v6[7]! >> 8, v6[7]! & 255].join('.');
  return v6.map((g) => g.toString(16)).join(':');
}

/** Loopback or unspecified (a connection to 0.0.0.0 or :: reaches this machine): this machine, whatever else it has. */
function isThisMachine(address: string): boolean {
  return address.startsWith('127.') || address === '0.0.0.0' || address === '0:0:0:0:0:0:0:1' || address === '0:0:0:0:0:0:0:0';
}

/** `host`, `host:port` or `[v6]:port` → host and port (undefined when none is written). */
function splitHostPort(registry: string): { host: string; port?: number } {
  const text = registry.trim().toLowerCase();
  const bracketed = /^(\[[^\]]*\])(?::(\d+))?$/.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] === undefined ? undefined : Number(bracketed[2]) };
  // More than one ':' without brackets is an IPv6 literal with no port.
  if (text.split(':').length > 2) return { host: text };
  const [host, port] = text.split(':');
  return { host: host!, port: port === undefined || port === '' ? undefined : Number(port) };
}

/**
 * A registry written without a port is reached on 443 (https), or 80 when the engine falls back to plain http;
 * storage's own URL says which one it is.
 */
function endpointOf(registry: string, resolution: Resolution, url?: string): Endpoint {
  const { host, port } = splitHostPort(registry);
  const scheme = url ? /^([a-z]+):/i.exec(url)?.[1]?.toLowerCase() : undefined;
  const ports = new Set(port !== undefined ? [port] : scheme === 'https' ? [443] : scheme === 'http' ? [80] : [443, 80]);
  const literal = canonicalAddress(host);
  if (literal) return { addresses: new Set([literal]), ports };
  const name = host.replace(/\.$/, '');
  const addresses = new Set((resolution.addresses?.[name] ?? []).map((a) => canonicalAddress(a)).filter((a): a is string => !!a));
  // `localhost` and its subdomains are this machine by definition (RFC 6761), resolved or not.
  if (name === 'localhost' || name.endsWith('.localhost')) addresses.add('127.0.0.1');
  return { name, addresses, ports };
}

function sameRegistry(a: Endpoint, b: Endpoint, local: ReadonlySet<string>): boolean {
  if (![...a.ports].some((p) => b.ports.has(p))) return false;
  if (a.name !== undefined && a.name === b.name) return true;
  if ([...a.addresses].some((x) => b.addresses.has(x))) return true;
  // Two addresses of this machine reach the same listener when it listens on all of them: one registry.
  const here = (e: Endpoint) => [...e.addresses].some((x) => isThisMachine(x) || local.has(x));
  return here(a) && here(b);
}

/**
 * True when `registry` (an image reference's registry host) reaches snapshot storage: the same port and the same
 * name, an address in common, or both on this machine. Names count by their addresses only when `resolution` has them.
 */
export function isSnapshotStorage(registry: string, storage: StorageEndpoint, resolution: Resolution = {}): boolean {
  const local = new Set((resolution.localAddresses ?? []).map((a) => canonicalAddress(a)).filter((a): a is string => !!a));
  return sameRegistry(endpointOf(registry, resolution), endpointOf(storage.registryHost, resolution, storage.url), local);
}

/** The typed refusal of an image snapshot whose source is snapshot storage. */
export function storageSourceRefused(image: string): SnapflowError {
  return new SnapflowError({
    code: 'VALIDATION_FAILED',
    field: 'image',
    message: `image ${quoteInput(image)} is in snapshot storage, which cannot be the source of an image snapshot`,
    hint: 'name the image in the registry it was published to',
  });
}

/**
 * Throws storageSourceRefused when `registry` reaches snapshot storage, after resolving every name on both sides
 * with `resolve` (which should be bounded in time; a name it cannot resolve counts by its spelling only).
 */
export async function refuseStorageSource(input: {
  image: string;
  registry: string;
  storage: StorageEndpoint;
  resolve?: ResolveAll;
  localAddresses?: readonly string[];
}): Promise<void> {
  const names = [input.registry, input.storage.registryHost]
    .map((r) => splitHostPort(r).host.replace(/\.$/, ''))
    .filter((host) => !canonicalAddress(host));
  const addresses: Record<string, string[]> = {};
  if (input.resolve) for (const name of new Set(names)) addresses[name] = await input.resolve(name).catch(() => []);
  if (isSnapshotStorage(input.registry, input.storage, { addresses, localAddresses: input.localAddresses }))
    throw storageSourceRefused(input.image);
}
