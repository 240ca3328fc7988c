// Docker/OCI image references, parsed by the distribution reference grammar so "which image" is decided
// once, before anything is written. Imported by workflows: keep it free of Node builtins.
import { SnapflowError } from './errors';

export interface ImageRef {
  /** Registry host, with port when given; Docker Hub is kept explicit as `docker.io`. */
  registry: string;
  /** Path inside the registry; Docker Hub single names get `library/`. */
  repository: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_REGISTRY = 'docker.io';
const LEGACY_DEFAULT_REGISTRY = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';
/** distribution's NameTotalLengthMax: registry + path, as typed. */
const MAX_NAME_LENGTH = 255;
/** Longest tag@digest reference the grammar can produce is well under this; refuse before any regex runs. */
const MAX_INPUT_LENGTH = 1024;
const EXAMPLE = 'ghcr.io/org/image:v1';

// The grammar's `[-]*` separator may be empty; written as `-+` (equivalent, since the empty case is absorbed
// by the component before it) so JS's backtracking engine stays linear on hostile input like "aaaa…A".
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DOMAIN_COMPONENT = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?';
const HOST = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`);
const DIGEST = /^([a-z][a-z0-9]*(?:[-_+.][a-z][a-z0-9]*)*):([a-f0-9]{32,})$/;
/** Registered algorithms have a fixed length; others only need the grammar's 32+ hex digits. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** JSON.stringify escapes C0 controls only; these would still reach a terminal raw. */
const UNESCAPED_CONTROLS = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** Quote user input for a message: escaped (a newline shows as \n) and cut to 40 characters. */
export function quoteInput(value: string, max = 40): string {
  const chars = Array.from(value);
  const quoted = JSON.stringify(chars.slice(0, max).join('')) + (chars.length > max ? '…' : '');
  return quoted.replace(UNESCAPED_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function refuse(input: string, problem: string, hint = `use registry/repository:tag, e.g. ${EXAMPLE}`): never {
  const what = input === '' || input.length > MAX_INPUT_LENGTH ? 'image reference' : `image reference ${quoteInput(input)}`;
  throw new SnapflowError({ code: 'VALIDATION_FAILED', field: 'image', message: `${what} ${problem}`, hint });
}

/** The first path component names a registry only if it looks like a host, as Docker decides it. */
function looksLikeRegistry(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/**
 * Parse `[registry[:port]/]path[:tag][@digest]`. Throws VALIDATION_FAILED on field `image` saying what is
 * wrong. Docker Hub short names are expanded (`node` → `docker.io/library/node`) and registry hosts are
 * lowercased, so two spellings of one image compare equal once formatted.
 */
export function parseImageRef(input: string): ImageRef {
  if (typeof input !== 'string' || input.trim() === '') refuse('', 'is empty');
  if (input.length > MAX_INPUT_LENGTH) refuse(input, `is ${input.length} characters long; at most ${MAX_INPUT_LENGTH} are accepted`);
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is being refused
  if (/[\s\u0000-\u001f\u007f]/.test(input)) refuse(input, 'contains whitespace or a control character');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) refuse(input, 'is a URL, not an image reference', `drop the scheme, e.g. ${EXAMPLE}`);

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const m = DIGEST.exec(digest);
    const expected = m ? DIGEST_HEX_LENGTH[m[1] as string] : undefined;
    if (!m || (expected !== undefined && (m[2] as string).length !== expected)) {
      refuse(
        input,
        `has an invalid digest ${quoteInput(digest)}`,
        'a digest is sha256: followed by 64 lowercase hex digits, e.g. ghcr.io/org/image@sha256:<64 hex>',
      );
    }
  }

  let tag: string | undefined;
  const colon = rest.indexOf(':', rest.lastIndexOf('/') + 1); // a ':' before the last '/' is a registry port
  if (colon !== -1) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (tag === '') refuse(input, "has an empty tag after ':'", `name the tag, e.g. ${EXAMPLE}`);
    if (!TAG.test(tag)) {
      refuse(
        input,
        `has an invalid tag ${quoteInput(tag)}`,
        `a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-', e.g. ${EXAMPLE}`,
      );
    }
  }

  const name = rest;
  if (name === '') refuse(input, 'has no repository name', `put the repository before the tag or digest, e.g. ${EXAMPLE}`);
  if (name.length > MAX_NAME_LENGTH) refuse(input, `has a name of ${name.length} characters; at most ${MAX_NAME_LENGTH} are allowed`);

  const parts = name.split('/');
  let registry = DEFAULT_REGISTRY;
  if (parts.length > 1 && looksLikeRegistry(parts[0] as string)) {
    const host = parts.shift() as string;
    if (!HOST.test(host))
      refuse(
        input,
        `has an invalid registry host ${quoteInput(host)}`,
        `a registry is a host name or IP with an optional port, e.g. ghcr.io or 127.0.0.1:5000`,
      );
    const port = /:(\d+)$/.exec(host)?.[1];
    if (port !== undefined && (Number(port) > 65535 || Number(port) === 0))
      refuse(input, `has registry port ${port}; a port is 1 to 65535`, `e.g. 127.0.0.1:5000/org/image:v1`);
    // Host names are case-insensitive; one spelling keeps catalog comparisons and the GHCR check exact.
    registry = host.toLowerCase() === LEGACY_DEFAULT_REGISTRY ? DEFAULT_REGISTRY : host.toLowerCase();
  }
  for (const part of parts) {
    if (part === '')
      refuse(
        input,
        "has an empty path component (a leading, trailing or doubled '/')",
        `separate path components with a single '/', e.g. ${EXAMPLE}`,
      );
    if (/[A-Z]/.test(part))
      refuse(input, 'has uppercase letters in the repository; repositories must be lowercase', `use lowercase, e.g. ${EXAMPLE}`);
    if (!PATH_COMPONENT.test(part)) {
      refuse(
        input,
        `has an invalid path component ${quoteInput(part)}`,
        `path components are lowercase letters and digits, separated by '.', '_', '__' or '-', e.g. ${EXAMPLE}`,
      );
    }
  }

  let repository = parts.join('/');
  if (registry === DEFAULT_REGISTRY && parts.length === 1) repository = OFFICIAL_PREFIX + repository;
  return { registry, repository, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** Canonical form `registry/repository[:tag][@digest]`, with docker.io kept explicit: what the catalog stores. */
export function formatImageRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** A reference that may point at different images over time: no digest, and no tag or `latest`. */
export function isFloatingTag(ref: ImageRef): boolean {
  return ref.digest === undefined && (ref.tag === undefined || ref.tag === 'latest');
}
