// Sandboxes: ids, what a new sandbox asks for, a job's command, workdir and env, the names a promotion or pin
// uses, and issue keys. Checked before an Update is sent or a row is written. Pure: no Node builtins.
import { msToNumber } from '@temporalio/common/lib/time';
import type { Duration } from '@temporalio/common';
import { SYSTEM_SCOPE } from '../ids';
import { quoteInput } from '../imageRef';
import { RUNTIMES, findPreset } from '../presets';
import { check, screenText } from './fields';
import { SLUG_REGEX, SNAPSHOT_NAME_REGEX } from './slugs';
import { SANDBOX_CLASSES } from '../vocabulary';

const ISSUE = /^[A-Za-z0-9][A-Za-z0-9._#-]{0,127}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** Linux refuses a single argument past 128 kB; half of that is plenty for a command line. */
const COMMAND_MAX = 64 * 1024;

const text = (v: unknown): string => (typeof v === 'string' ? v : '');
const quote = (v: unknown): string => quoteInput(text(v)); // escaped: no newline or bidi override reaches a terminal raw

/** An optional flag: absent, true or false. */
export const checkFlag = (field: string, v: unknown): void =>
  check(
    field,
    v === undefined || typeof v === 'boolean',
    `${field} must be true or false, not ${typeof v}`,
    `leave ${field} out, or pass true or false`,
  );

/** A job as the caller sends it; the workflow's JobRequest is one of these. */
export interface JobInput {
  command: unknown;
  workdir?: unknown;
  env?: unknown;
}

/**
 * What a job may ask the sandbox's exec for, checked before the Update is sent: the workflow's own validator only
 * sees the command, and a workdir or env Docker refuses would fail the job and stop the sandbox.
 */
export function checkJob(job: JobInput): void {
  const command: unknown = job?.command;
  const args = Array.isArray(command) ? (command as unknown[]) : [];
  check(
    'command',
    args.length > 0 && args.every((a) => typeof a === 'string' && !a.includes('\0')),
    'a job needs a command: a non-empty list of strings without NUL bytes',
    'e.g. ["sh", "-c", "npm test"]',
  );
  check(
    'command',
    (args as string[]).reduce((n, a) => n + a.length, 0) <= COMMAND_MAX,
    `the command is over ${COMMAND_MAX / 1024} kB`,
    'put a long script in a file in the sandbox and run that',
  );
  if (job.workdir !== undefined) {
    const workdir = screenText('workdir', job.workdir, 'an absolute path inside the sandbox, e.g. /workspace');
    check(
      'workdir',
      workdir.startsWith('/') && !workdir.split('/').includes('..'),
      `workdir ${quote(workdir)} is not an absolute path without '..'`,
      'e.g. --workdir /workspace/app',
    );
  }
  if (job.env !== undefined) {
    const env: unknown = job.env;
    const entries = typeof env === 'object' && env !== null && !Array.isArray(env) ? Object.entries(env) : undefined;
    check('env', entries !== undefined, 'env must be an object of names to values', 'e.g. { "CI": "1" }');
    for (const [name, value] of entries!) {
      check(
        'env',
        ENV_NAME.test(name),
        `env name ${quote(name)} is not a variable name`,
        'letters, digits and "_", not starting with a digit',
      );
      check(
        'env',
        typeof value === 'string' && !value.includes('\0'),
        `env ${name} must be a string without NUL bytes`,
        'e.g. { "CI": "1" }',
      );
    }
  }
}

/** A sandbox's workspace: a workspace slug, or the system workspace. */
export function checkSandboxWorkspace(workspace: unknown): string {
  check(
    'workspace',
    text(workspace) === SYSTEM_SCOPE || SLUG_REGEX.test(text(workspace)),
    `workspace ${quote(workspace)} is not a workspace slug`,
    'lowercase letters, digits and "-", e.g. "acme"',
  );
  return text(workspace);
}

export function checkSandboxId(id: unknown): string {
  check(
    'sandbox',
    UUID.test(text(id)),
    `sandbox id ${quote(id)} is not a sandbox id`,
    'use the id `snapflow sandbox create` printed (a UUID)',
  );
  return text(id);
}

/**
 * What a new sandbox asks for, after its workspace: a class (vm or container), a
 * size preset, a runtime, an optional issue key and keepAlive flag.
 */
export function checkSandboxSpec(input: { class: unknown; size: unknown; runtime: unknown; issue?: unknown; keepAlive?: unknown }): void {
  check(
    'class',
    (SANDBOX_CLASSES as readonly string[]).includes(text(input.class)),
    `class ${quote(input.class)} is not a sandbox class`,
    `use one of: ${SANDBOX_CLASSES.join(', ')}`,
  );
  check('size', Boolean(findPreset(text(input.size))), `size ${quote(input.size)} is not a size preset`, 'use small, medium or large');
  check(
    'runtime',
    (RUNTIMES as readonly string[]).includes(text(input.runtime)),
    `runtime ${quote(input.runtime)} is not supported`,
    `use one of: ${RUNTIMES.join(', ')}`,
  );
  if (input.issue !== undefined) checkIssueKey(input.issue);
  checkFlag('keepAlive', input.keepAlive);
}

/**
 * What a new sandbox starts from: an agent (its snapshot as it is at each start), an image snapshot by name, or
 * neither (the built-in base); never both. Without a base, size and runtime are required; with one they default
 * to the snapshot's.
 */
export function checkSandboxBase(input: { agent?: unknown; snapshot?: unknown; size?: unknown; runtime?: unknown }): void {
  check(
    'snapshot',
    input.agent === undefined || input.snapshot === undefined,
    'a sandbox starts from an agent or from a snapshot, not both',
    'pass --agent <name> or --snapshot <name>',
  );
  const hint = 'use the name shown by `snapflow agent list` or `snapflow snapshot list`';
  for (const field of ['agent', 'snapshot'] as const) {
    const value = input[field];
    if (value !== undefined) check(field, SNAPSHOT_NAME_REGEX.test(text(value)), `${field} ${quote(value)} is not a ${field} name`, hint);
  }
  if (input.agent === undefined && input.snapshot === undefined) {
    check('size', input.size !== undefined, 'a sandbox on the built-in base needs a size', 'pass --size small, medium or large');
    check(
      'runtime',
      input.runtime !== undefined,
      'a sandbox on the built-in base needs a runtime',
      `pass --runtime ${RUNTIMES.join(' or ')}`,
    );
  }
}

/** How long a sandbox may sit idle, live, or run one job: bounds in milliseconds, each with its example. */
export const SANDBOX_DURATIONS = {
  idleTimeout: { min: 1_000, max: 7 * 24 * 3_600_000, example: '15m' },
  maxLifetime: { min: 1_000, max: 30 * 24 * 3_600_000, example: '24h' },
  timeout: { min: 1_000, max: 24 * 3_600_000, example: '10m' },
} as const;

/** A duration such as "15m", "90s", "8h" or a number of milliseconds; absent stays absent. */
export function checkSandboxDuration(field: keyof typeof SANDBOX_DURATIONS, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const { min, max, example } = SANDBOX_DURATIONS[field];
  let ms = NaN;
  if (typeof value === 'string') screenText(field, value, `e.g. ${example}`, 64);
  try {
    if (typeof value === 'string' || typeof value === 'number') ms = msToNumber(value as Duration);
  } catch {
    ms = NaN;
  }
  check(
    field,
    Number.isFinite(ms) && ms >= min && ms <= max,
    `${field} ${quote(String(value))} is not a duration from ${min / 1000}s to ${max / 3_600_000}h`,
    `e.g. ${example}, 90s or 2h`,
  );
  return Math.round(ms);
}

/** An external issue key, e.g. "ENG-42". */
export function checkIssueKey(issue: unknown): string {
  check('issue', ISSUE.test(text(issue)), `issue ${quote(issue)} is not an issue key`, 'e.g. ENG-42');
  return text(issue);
}

/** The name a sandbox is promoted to (field `name`). */
export function checkPromotedName(name: unknown): string {
  check(
    'name',
    SNAPSHOT_NAME_REGEX.test(text(name)),
    `name ${quote(name)} is not a snapshot name`,
    'lowercase letters, digits, ".", "_" or "-", e.g. "agent-golden-v2"',
  );
  return text(name);
}

/** The snapshot an issue is pinned to (field `snapshot`). */
export function checkPinnedSnapshot(snapshot: unknown): string {
  check(
    'snapshot',
    SNAPSHOT_NAME_REGEX.test(text(snapshot)),
    `snapshot ${quote(snapshot)} is not a snapshot name`,
    'use the name shown by `snapflow snapshot list`',
  );
  return text(snapshot);
}
