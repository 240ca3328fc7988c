// A create-image-snapshot request, checked before anything is written or started. Every refusal is
// VALIDATION_FAILED naming the field, with a hint that says the fix. Pure: no Node builtins.
import { SnapflowError } from './errors';
import { SYSTEM_SCOPE } from './ids';
import { formatImageRef, isFloatingTag, parseImageRef, quoteInput, type ImageRef } from './imageRef';
import { RUNTIMES, SIZE_PRESETS, findPreset, profileKey, type Runtime } from './presets';

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
  scope: string;
  name: string;
  image: ImageRef;
  /** Canonical form of `image`, as stored in the catalog and compared for reuse. */
  imageRef: string;
  entrypoint: string;
  runtime: Runtime;
  size: string;
  profileKey: string;
}

export const DEFAULT_ENTRYPOINT = '/app/start.sh';
/** Equal to SNAPSHOT_NAME_PATTERN in db/schema.ts (a test keeps them so); copied so lib never loads drizzle. */
export const SNAPSHOT_NAME_REGEX = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const NAME_MAX = 63;
const WORKSPACE_REGEX = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ENTRYPOINT_MAX = 255;
/** No field needs more; longer input is refused before any rule (or regex) looks at it. */
const MAX_STRING = 1024;
// C0/C1 controls and DEL, Unicode line separators, and bidi overrides that make logs and tables lie.
// eslint-disable-next-line no-control-regex -- control characters are exactly what is being refused
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const HINTS = {
  workspace: `use the workspace slug: lowercase letters, digits and '-', up to 63, e.g. "acme", or "${SYSTEM_SCOPE}"`,
  name: `use lowercase letters, digits, '.', '_' or '-', up to ${NAME_MAX}, starting with a letter or digit; versioned names like "agent-base-v3" keep replacements and rollbacks clear`,
  image: 'use registry/repository:tag with a stable tag, e.g. ghcr.io/org/image:v1',
  entrypoint: `use an absolute path to the executable inside the image, e.g. ${DEFAULT_ENTRYPOINT}`,
  runtime: `use one of: ${RUNTIMES.join(', ')}`,
  size: `use one of: ${SIZE_PRESETS.map((p) => p.key).join(', ')}`,
} as const;
type Field = keyof typeof HINTS;

export function validationError(field: string, message: string, hint: string): SnapflowError {
  return new SnapflowError({ code: 'VALIDATION_FAILED', field, message, hint });
}

function refuse(field: Field, message: string, hint: string = HINTS[field]): never {
  throw validationError(field, message, hint);
}

/** What no field accepts: missing, not text, over 1 kB, NUL or control characters. Quotes at most 40 chars. */
function screen(field: Field, value: unknown): string {
  return screenText(field, value, HINTS[field]);
}

/** The same screen for any text field (a host id, a reason, a path), with its own hint and length limit. */
export function screenText(field: string, value: unknown, hint: string, max: number = MAX_STRING): string {
  const no = (message: string): never => {
    throw validationError(field, message, hint);
  };
  if (value === undefined || value === null) no(`${field} is required`);
  if (typeof value !== 'string') no(`${field} must be a string, not ${Array.isArray(value) ? 'a list' : typeof value}`);
  const text = value as string;
  if (text === '') no(`${field} is empty`);
  if (text.length > max) no(`${field} is ${text.length} characters long; at most ${max} are accepted`);
  if (text.includes('\0')) no(`${field} ${quoteInput(text)} contains a NUL byte`);
  if (CONTROL.test(text)) no(`${field} ${quoteInput(text)} contains a control character (such as a newline or tab)`);
  return text;
}

/** Says which part of a slug is wrong, so the message is more than "does not match a pattern". */
function slugProblem(value: string, extra: string, max: number): string {
  if (value.length > max) return `is ${value.length} characters long; at most ${max} are allowed`;
  if (/[A-Z]/.test(value)) return 'must be lowercase';
  if (!/^[a-z0-9]/.test(value)) return 'must start with a lowercase letter or digit';
  const bad = Array.from(value).find((c) => !/[a-z0-9]/.test(c) && !extra.includes(c));
  return bad === undefined ? 'is not valid' : `contains ${JSON.stringify(bad)}, which is not allowed`;
}

/** The rule of each field that reads and other commands name too; create applies the same ones. */
const RULES = {
  workspace: (v: string) => (v === SYSTEM_SCOPE || WORKSPACE_REGEX.test(v) ? undefined : `workspace ${quoteInput(v)} ${slugProblem(v, '-', 63)}`),
  name: (v: string) => (SNAPSHOT_NAME_REGEX.test(v) ? undefined : `name ${quoteInput(v)} ${slugProblem(v, '._-', NAME_MAX)}`),
  runtime: (v: string) => ((RUNTIMES as readonly string[]).includes(v) ? undefined : `runtime ${quoteInput(v)} is not supported`),
  size: (v: string) => (findPreset(v) ? undefined : `size ${quoteInput(v)} is not a size preset`),
} satisfies Partial<Record<Field, (value: string) => string | undefined>>;

/**
 * One field outside a create request (a workspace to read, a snapshot name to get, delete or set as default, a
 * size or runtime to roll back): screened, then held to the rule create uses. VALIDATION_FAILED naming it.
 */
export function validateField(field: keyof typeof RULES, value: unknown): string {
  const text = screen(field, value);
  const problem = RULES[field](text);
  if (problem) refuse(field, problem);
  return text;
}

function entrypointProblem(value: string): string | undefined {
  if (value.length > ENTRYPOINT_MAX) return `is ${value.length} characters long; at most ${ENTRYPOINT_MAX} are allowed`;
  if (!value.startsWith('/')) return 'must be an absolute path';
  const bad = Array.from(value).find((c) => !/[A-Za-z0-9._/-]/.test(c));
  if (bad !== undefined) return `contains ${JSON.stringify(bad)}; only letters, digits, '.', '_', '-' and '/' are allowed`;
  if (value.split('/').includes('..')) return "has a '..' segment";
  if (value.endsWith('/')) return 'names a directory, not an executable';
  return undefined;
}

export function validateCreateImageSnapshot(input: CreateImageSnapshotInput): ValidatedImageSnapshot {
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
    refuse('image', `image ${quoteInput(imageText)} ${why}, so the snapshot could change under the same name`, 'pin a stable tag like ghcr.io/org/image:v1 (or a @sha256: digest), or pass --allow-floating-tag');
  }

  const entrypointIssue = entrypointProblem(entrypoint);
  if (entrypointIssue) refuse('entrypoint', `entrypoint ${quoteInput(entrypoint)} ${entrypointIssue}`);
  const runtimeIssue = RULES.runtime(runtime);
  if (runtimeIssue) refuse('runtime', runtimeIssue);
  const sizeIssue = RULES.size(size);
  if (sizeIssue) refuse('size', sizeIssue);

  const validRuntime = runtime as Runtime;
  return { scope: workspace, name, image, imageRef: formatImageRef(image), entrypoint, runtime: validRuntime, size, profileKey: profileKey({ runtime: validRuntime, size }) };
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
