// A create-image-snapshot request, checked before anything is written or started, and the next free versioned
// name for a replacement. Pure: no Node builtins.
import { formatImageRef, isFloatingTag, parseImageRef, quoteInput, type ImageRef } from '../imageRef';
import { profileKey, type Runtime } from '../presets';
import { isSnapshotStorage, storageSourceRefused, type StorageEndpoint } from '../registryAddress';
import { DEFAULT_ENTRYPOINT, NAME_MAX, RULES, refuse, screen } from './fields';

export interface CreateImageSnapshotInput {
  workspace: string;
  name: string;
  image: string;
  entrypoint?: string;
  runtime: string;
  size: string;
  allowFloatingTag?: boolean;
}

export interface ValidatedImageSnapshot {
  workspace: string;
  name: string;
  image: ImageRef;
  /** Canonical form of `image`, as stored in the catalog and compared for reuse. */
  imageRef: string;
  entrypoint: string;
  runtime: Runtime;
  size: string;
  profileKey: string;
}

const ENTRYPOINT_MAX = 255;

function entrypointProblem(value: string): string | undefined {
  if (value.length > ENTRYPOINT_MAX) return `is ${value.length} characters long; at most ${ENTRYPOINT_MAX} are allowed`;
  if (!value.startsWith('/')) return 'must be an absolute path';
  const bad = Array.from(value).find((c) => !/[A-Za-z0-9._/-]/.test(c));
  if (bad !== undefined) return `contains ${JSON.stringify(bad)}; only letters, digits, '.', '_', '-' and '/' are allowed`;
  if (value.split('/').includes('..')) return "has a '..' segment";
  if (value.endsWith('/')) return 'names a directory, not an executable';
  return undefined;
}

/**
 * `storage`: snapshot storage, never a source (it holds every workspace's images). Address literals are compared
 * here; names are compared by their addresses where the caller can resolve them (refuseStorageSource).
 */
export function validateCreateImageSnapshot(
  input: CreateImageSnapshotInput,
  options: { storage?: StorageEndpoint } = {},
): ValidatedImageSnapshot {
  // Every string is screened before any field rule, so hostile input gets the same short answer everywhere.
  const workspace = screen('workspace', input.workspace);
  const name = screen('name', input.name);
  const imageText = screen('image', input.image);
  const entrypoint = input.entrypoint === undefined ? DEFAULT_ENTRYPOINT : screen('entrypoint', input.entrypoint);
  const runtime = screen('runtime', input.runtime);
  const size = screen('size', input.size);

  const workspaceIssue = RULES.workspace(workspace);
  if (workspaceIssue) refuse('workspace', workspaceIssue);
  const nameIssue = RULES.name(name);
  if (nameIssue) refuse('name', nameIssue);

  const image = parseImageRef(imageText);
  if (isFloatingTag(image) && input.allowFloatingTag !== true) {
    const why = image.tag === undefined ? 'has no tag' : "uses the floating tag 'latest'";
    refuse(
      'image',
      `image ${quoteInput(imageText)} ${why}, so the snapshot could change under the same name`,
      'pin a stable tag like ghcr.io/org/image:v1 (or a @sha256: digest), or pass --allow-floating-tag',
    );
  }

  if (options.storage && isSnapshotStorage(image.registry, options.storage)) throw storageSourceRefused(imageText);

  const entrypointIssue = entrypointProblem(entrypoint);
  if (entrypointIssue) refuse('entrypoint', `entrypoint ${quoteInput(entrypoint)} ${entrypointIssue}`);
  const runtimeIssue = RULES.runtime(runtime);
  if (runtimeIssue) refuse('runtime', runtimeIssue);
  const sizeIssue = RULES.size(size);
  if (sizeIssue) refuse('size', sizeIssue);

  const validRuntime = runtime as Runtime;
  return {
    workspace: workspace,
    name,
    image,
    imageRef: formatImageRef(image),
    entrypoint,
    runtime: validRuntime,
    size,
    profileKey: profileKey({ runtime: validRuntime, size }),
  };
}

/**
 * The next free versioned name: `agent-base-v3` → `agent-base-v4`, `agent-base` → `agent-base-v2`, skipping
 * names in `taken`. The base is shortened when needed so the result still fits the 63-character name rule.
 */
export function nextVersionedName(name: string, taken: readonly string[]): string {
  const used = new Set(taken);
  const m = /^(.+)-v(\d+)$/.exec(name);
  const base = m ? (m[1] as string) : name;
  // BigInt: a name may carry more digits than a double holds exactly.
  for (let version = m ? BigInt(m[2] as string) + 1n : 2n; ; version++) {
    const suffix = `-v${version}`;
    const stem = base.length + suffix.length > NAME_MAX ? base.slice(0, NAME_MAX - suffix.length).replace(/[._-]+$/, '') : base;
    const candidate = stem + suffix;
    if (!used.has(candidate)) return candidate;
  }
}
