// The shared vocabulary of refusals: every one is VALIDATION_FAILED naming the field, with a hint that says the
// fix. Text is screened (missing, not text, too long, control characters) before any field rule looks at it.
// Pure: no Node builtins.
import { SnapflowError } from '../errors';
import { RESERVED_WORKSPACE_IDS, SYSTEM_SCOPE } from '../ids';
import { quoteInput } from '../imageRef';
import { RUNTIMES, SIZE_PRESETS, findPreset } from '../presets';
import { SLUG_REGEX, SNAPSHOT_NAME_REGEX } from './slugs';

export const DEFAULT_ENTRYPOINT = '/app/start.sh';
export const NAME_MAX = 63;
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
/** A field of an image snapshot, which reads and other commands name too. */
export type Field = keyof typeof HINTS;

export function validationError(field: string, message: string, hint: string): SnapflowError {
  return new SnapflowError({ code: 'VALIDATION_FAILED', field, message, hint });
}

/** Refuses `field` with `message` and `hint` unless `ok`. */
export function check(field: string, ok: boolean, message: string, hint: string): void {
  if (!ok) throw validationError(field, message, hint);
}

export function refuse(field: Field, message: string, hint: string = HINTS[field]): never {
  throw validationError(field, message, hint);
}

/** What no field accepts: missing, not text, over 1 kB, NUL or control characters. Quotes at most 40 chars. */
export function screen(field: Field, value: unknown): string {
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
export const RULES = {
  workspace: (v: string) =>
    v !== SYSTEM_SCOPE && (RESERVED_WORKSPACE_IDS as readonly string[]).includes(v)
      ? `workspace "${v}" is reserved: snapshot storage uses that name for its own repositories`
      : v === SYSTEM_SCOPE || SLUG_REGEX.test(v)
        ? undefined
        : `workspace ${quoteInput(v)} ${slugProblem(v, '-', 63)}`,
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

export { wholeNumber } from './numbers';
