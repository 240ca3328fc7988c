// Agents and rollouts: agent names, the agents a rollout names, and how a rollout proceeds (canary, batch, health
// timeout, auto). Shared by `agent …` and `snapshot create --replace --rollout`. Pure: no Node builtins.
import type { Duration } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { SnapflowError } from '../errors';
import { SYSTEM_SCOPE } from '../ids';
import { quoteInput } from '../imageRef';
import { check, screenText, validateField } from './fields';
import { NAME_REGEX, SNAPSHOT_NAME_REGEX } from './slugs';

const AGENT_HINT = 'lowercase letters, digits, ".", "_" or "-", up to 63, e.g. "support-bot"';
const MAX_AGENTS = 1000;
const MAX_BATCH = 100;
const HEALTH_TIMEOUT_MS = { min: 1_000, max: 7 * 24 * 3600_000 };

/** How a rollout proceeds, as a caller asks for it. */
export interface RolloutOptionsInput {
  canary?: number;
  batchSize?: number;
  /** e.g. '10 minutes' (default), '30s', or milliseconds; checked (VALIDATION_FAILED healthTimeout). */
  healthTimeout?: Duration | string;
  /** Check the canary itself (a sandbox of the snapshot runs its entrypoint and the health command) instead of waiting for a report. */
  auto?: boolean;
}

/** The same, checked: what the rollout workflow takes. */
export interface RolloutOptions {
  canary?: number;
  batchSize?: number;
  healthTimeout?: Duration;
  auto?: boolean;
}

/** Agents live in a workspace: a slug, never the system workspace. */
export function checkAgentWorkspace(value: unknown): string {
  const workspace = validateField('workspace', value);
  check(
    'workspace',
    workspace !== SYSTEM_SCOPE,
    `agents belong to a workspace, not the ${SYSTEM_SCOPE} workspace`,
    'use the workspace slug, e.g. "acme"',
  );
  return workspace;
}

export function checkAgentName(field: string, value: unknown): string {
  const name = screenText(field, value, AGENT_HINT, 63);
  check(field, NAME_REGEX.test(name), `agent name ${quoteInput(name)} is not an agent name`, AGENT_HINT);
  return name;
}

/** What a canary of the agent runs as a job to prove it healthy: argv, non-empty, strings without NUL, at most 4 kB. */
export function checkHealthCommand(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  const args = Array.isArray(value) ? (value as unknown[]) : [];
  const hint = 'e.g. ["sh", "-c", "pidof agent"] (the CLI wraps --health-command in sh -c)';
  check(
    'healthCommand',
    args.length > 0 && args.every((a) => typeof a === 'string' && !a.includes('\0')),
    'a health command is a non-empty list of strings without NUL bytes',
    hint,
  );
  check('healthCommand', (args as string[]).join(' ').length <= 4096, 'the health command is over 4 kB', hint);
  return args as string[];
}

/** The snapshot an agent runs on or a rollout rolls out (field `snapshot`). */
export function checkAgentSnapshotName(value: unknown): string {
  const name = screenText('snapshot', value, 'use the name shown by `snapflow snapshot list`', 63);
  check(
    'snapshot',
    SNAPSHOT_NAME_REGEX.test(name),
    `snapshot ${quoteInput(name)} is not a snapshot name`,
    'use the name shown by `snapflow snapshot list`',
  );
  return name;
}

function checkCount(field: string, value: unknown, max: number, hint: string): number | undefined {
  if (value === undefined) return undefined;
  check(
    field,
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= max,
    `${field} must be a whole number from 1 to ${max}, not ${quoteInput(String(value))}`,
    hint,
  );
  return value as number;
}

function checkDuration(field: string, value: unknown): Duration | undefined {
  if (value === undefined) return undefined;
  let ms = NaN;
  try {
    if (typeof value === 'string') screenText(field, value, 'e.g. "10 minutes" or "30s"', 64);
    if (typeof value === 'string' || typeof value === 'number') ms = msToNumber(value as Duration);
  } catch (err) {
    if (err instanceof SnapflowError) throw err;
  }
  check(
    field,
    Number.isFinite(ms) && ms >= HEALTH_TIMEOUT_MS.min && ms <= HEALTH_TIMEOUT_MS.max,
    `${field} ${quoteInput(String(value))} is not a duration from 1 second to 7 days`,
    'e.g. "10 minutes", "90s" or "2h"',
  );
  return value as Duration;
}

/** Agent names in rollout order, each once, or `'all'`. */
export function checkRolloutAgents(value: unknown): string[] | 'all' {
  if (value === 'all') return 'all';
  check(
    'agents',
    Array.isArray(value) && value.length > 0,
    'agents must be a non-empty list of agent names, or "all"',
    'e.g. --agents support-bot,triage-bot, or --all',
  );
  const names = (value as unknown[]).map((n) => checkAgentName('agents', n));
  check(
    'agents',
    names.length <= MAX_AGENTS,
    `${names.length} agents in one rollout; at most ${MAX_AGENTS}`,
    'roll out in several waves, or use --all',
  );
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  check('agents', twice === undefined, `agent ${twice} is named twice`, 'name each agent once');
  return names;
}

/** How a rollout proceeds (canary, batch, health timeout, auto), checked for `agent rollout` and `snapshot create --replace --rollout`. */
export function checkRolloutOptions(input: RolloutOptionsInput): RolloutOptions {
  const canary = checkCount('canary', input.canary, MAX_AGENTS, 'how many agents move first, e.g. --canary 1');
  const batchSize = checkCount('batchSize', input.batchSize, MAX_BATCH, 'agents moved per batch after the canary, e.g. --batch 2');
  const healthTimeout = checkDuration('healthTimeout', input.healthTimeout);
  check(
    'auto',
    input.auto === undefined || typeof input.auto === 'boolean',
    `auto must be true or false, not ${typeof input.auto}`,
    'leave auto out, or pass true or false',
  );
  return { canary, batchSize, healthTimeout, auto: input.auto };
}

/** Who asks: a claim, screened like any other text (absent means the configured actor). */
export const checkActor = (value: unknown): string | undefined =>
  value === undefined ? undefined : screenText('actor', value, 'a user id, e.g. alice@example.com', 128);
