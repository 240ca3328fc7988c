// Validation of a golden build config (per workspace, or `system`), before it is stored or scheduled.
import { SnapflowError } from './errors';
import { SYSTEM_SCOPE } from './ids';
import type { PreloadLimits } from './config';
import { quoteInput } from './imageRef';
import { checkRepoAllowed, checkSkillsAllowed } from './preloadSources';
import { RUNTIMES, findPreset, type Runtime } from './presets';
import { SLUG_REGEX, SNAPSHOT_NAME_REGEX, screenText } from './validation';

export interface GoldenConfigInput {
  workspace: string;
  repos?: string[];
  embedSkills?: boolean;
  skillsPath?: string;
  prebuildDeps?: boolean;
  depsFallbackCommand?: string;
  /** `size:runtime` strings (e.g. `small:codex`) or objects. */
  targets: Array<string | { size: string; runtime: string; base?: string; machine?: boolean }>;
  /** The image snapshot (by name) every target's build starts from; default the built-in base. */
  base?: string;
  /** Five-field cron (`0 3 * * *`) or a time of day (`03:00`). */
  schedule?: string;
  timeZone?: string;
  enabled?: boolean;
}

export interface GoldenConfig {
  workspace: string;
  repos: string[];
  embedSkills: boolean;
  skillsPath: string | null;
  prebuildDeps: boolean;
  depsFallbackCommand: string | null;
  targets: Array<{ size: string; runtime: Runtime; base?: string; machine?: boolean }>;
  scheduleCron: string | null;
  scheduleTimeZone: string;
  enabled: boolean;
}

const refuse = (field: string, message: string, hint: string): never => {
  throw new SnapflowError({ code: 'VALIDATION_FAILED', field, message, hint });
};
/** Text, not empty, within `max`, without NUL, control or bidi characters (the screen every create field gets). */
const clean = (field: string, value: unknown, max: number, hint: string): string => screenText(field, value, hint, max);
/** A `..` segment climbs out of where a path says it is; no repository or skills directory needs one. */
const climbs = (value: string): boolean => value.split(/[/:]/).includes('..');

/** A git URL (https, ssh, git@host:path) or an absolute local path; never something git would read as an option. */
function repo(value: unknown): string {
  const hint = 'use https://host/org/repo.git, git@host:org/repo.git or an absolute path to a repository';
  const text = clean('repos', value, 500, hint);
  if (text.startsWith('-')) refuse('repos', `repository ${quoteInput(text)} looks like a command-line option`, hint);
  const ok =
    /^(https?|ssh|git|file):\/\/[\w.~@:%+/-]+$/.test(text) || /^[\w.-]+@[\w.-]+:[\w./-]+$/.test(text) || /^\/[\w./@+-]+$/.test(text);
  if (!ok) refuse('repos', `repository ${quoteInput(text)} is not a git URL or absolute path`, hint);
  if (climbs(text)) refuse('repos', `repository ${quoteInput(text)} has a '..' segment`, hint);
  return text;
}

/** `03:00` → `0 3 * * *`; a five-field cron is checked field by field (numbers, ranges, steps, lists, `*`). */
export function toCron(value: unknown): string {
  const hint = 'use a time of day like 03:00, or a five-field cron like "0 3 * * *"';
  const schedule = clean('schedule', value, 100, hint);
  const time = /^(\d{1,2}):(\d{2})$/.exec(schedule.trim());
  if (time) {
    const [hour, minute] = [Number(time[1]), Number(time[2])];
    if (hour > 23 || minute > 59) refuse('schedule', `${schedule} is not a time of day`, hint);
    return `${minute} ${hour} * * *`;
  }
  const fields = schedule.trim().split(/\s+/);
  // minute, hour, day of month, month, day of week: days and months count from 1.
  const limits: Array<[number, number]> = [
    [0, 59],
    [0, 23],
    [1, 31],
    [1, 12],
    [0, 7],
  ];
  if (fields.length !== 5) refuse('schedule', `${quoteInput(schedule)} has ${fields.length} fields; cron needs 5`, hint);
  fields.forEach((field, i) => {
    const [min, max] = limits[i]!;
    for (const part of field.split(',')) {
      const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
      const numbers = m?.[1] === '*' ? [] : (m?.[1]?.split('-').map(Number) ?? [NaN]);
      const reversed = numbers.length === 2 && numbers[0]! > numbers[1]!;
      if (!m || reversed || numbers.some((n) => Number.isNaN(n) || n < min || n > max) || (m[2] !== undefined && Number(m[2]) === 0)) {
        refuse('schedule', `cron field ${i + 1} ${quoteInput(field, 20)} is not valid (${min}-${max})`, hint);
      }
    }
  });
  return fields.join(' ');
}

function timeZone(value: unknown): string {
  const hint = 'use an IANA time zone such as UTC or Europe/Paris';
  const zone = clean('timeZone', value, 64, hint);
  let known: string | undefined;
  try {
    known = new Intl.DateTimeFormat('en', { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    refuse('timeZone', `${quoteInput(zone)} is not a known time zone`, hint);
  }
  // Intl ignores case, the schedule's zone database does not: "europe/paris" would be stored, then refused.
  if (known !== zone && known?.toLowerCase() === zone.toLowerCase())
    refuse('timeZone', `${quoteInput(zone)} is spelled ${quoteInput(known)}`, `use ${known}`);
  return zone;
}

/** A list field: a list, or absent. */
function list(field: string, value: unknown, hint: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) refuse(field, `${field} must be a list`, hint);
  return value as unknown[];
}

/** The image snapshot a build starts from, by name (lowercase, registry-tag friendly). */
function baseName(value: unknown): string {
  const hint = 'name an active image snapshot, e.g. --base agent-v2 (see `snapflow snapshot list`)';
  const name = clean('base', value, 63, hint);
  if (!SNAPSHOT_NAME_REGEX.test(name)) refuse('base', `base ${quoteInput(name)} is not a snapshot name`, hint);
  return name;
}

/** `size:runtime`, or `{ size, runtime, base? }`. */
function target(value: unknown): { size: string; runtime: Runtime; base?: string; machine?: boolean } {
  const hint = 'use small, medium or large with codex or pi, e.g. --target small:codex (or small:codex:vm for a saved machine)';
  let machine = false;
  let parts: unknown[] = [];
  if (typeof value === 'string') {
    parts = value.split(':');
    if (parts.length === 3 && parts[2] === 'vm') {
      parts = parts.slice(0, 2);
      machine = true;
    }
  } else if (typeof value === 'object' && value !== null) {
    const o = value as { size?: unknown; runtime?: unknown; machine?: unknown };
    parts = [o.size, o.runtime];
    if (o.machine !== undefined && typeof o.machine !== 'boolean') refuse('targets', 'target machine must be true or false', hint);
    machine = o.machine === true;
  }
  if (parts.length !== 2)
    refuse('targets', `target ${typeof value === 'string' ? quoteInput(value) : `of type ${typeof value}`} is not size:runtime[:vm]`, hint);
  const [size, runtime] = parts;
  if (typeof size !== 'string' || !findPreset(size))
    refuse('targets', `target size ${quoteInput(String(size), 20)} is not a size preset`, hint);
  if (typeof runtime !== 'string' || !(RUNTIMES as readonly string[]).includes(runtime))
    refuse('targets', `target runtime ${quoteInput(String(runtime), 20)} is not one of ${RUNTIMES.join(', ')}`, hint);
  const base = typeof value === 'object' && value !== null ? (value as { base?: unknown }).base : undefined;
  return {
    size: size as string,
    runtime: runtime as Runtime,
    ...(base === undefined ? {} : { base: baseName(base) }),
    ...(machine ? { machine: true } : {}),
  };
}

/**
 * With `limits` (the caller's SNAPFLOW_SKILLS_ROOT / _REPOS_ROOT / _REPO_HOSTS) a repository or skills path outside
 * them is refused here too; the host worker checks again on the real path before it reads anything.
 */
export function validateGoldenConfig(input: GoldenConfigInput, limits?: PreloadLimits): GoldenConfig {
  const workspace = input.workspace;
  if (typeof workspace !== 'string' || (workspace !== SYSTEM_SCOPE && !SLUG_REGEX.test(workspace))) {
    refuse('workspace', 'workspace must be a lowercase slug or "system"', 'e.g. --workspace acme');
  }
  const repos = list('repos', input.repos, 'repeat --repo once per repository').map(repo);
  if (repos.length > 20)
    refuse('repos', `${repos.length} repositories; at most 20 are preloaded`, 'keep the golden image to the repositories most jobs need');
  const common = input.base === undefined ? undefined : baseName(input.base);
  const targets = list('targets', input.targets, 'repeat --target once per size:runtime')
    .map(target)
    .map((t) => (common && !t.base ? { ...t, base: common } : t));
  // One temporary sandbox per build: its targets share the image it starts from.
  if (new Set(targets.map((t) => t.base ?? '')).size > 1)
    refuse('base', 'the targets of one golden config name different bases', 'give every target the same --base (or none)');
  if (targets.length === 0) refuse('targets', 'at least one target size/profile is needed', 'e.g. --target small:codex');
  if (new Set(targets.map((t) => `${t.size}:${t.runtime}`)).size !== targets.length)
    refuse('targets', 'a target is listed twice', 'list each size:runtime once');
  if (input.embedSkills && input.skillsPath === undefined)
    refuse('skillsPath', 'embedding skills needs the skills directory', 'pass --skills-path /abs/path/to/skills');
  const skillsPath =
    input.skillsPath === undefined ? null : clean('skillsPath', input.skillsPath, 500, 'an absolute path, e.g. /srv/snapflow/skills');
  if (skillsPath !== null && (!/^\/[\w./@+-]*$/.test(skillsPath) || climbs(skillsPath))) {
    refuse('skillsPath', "skills path must be an absolute path without a '..' segment", 'e.g. /srv/snapflow/skills');
  }
  if (limits) {
    for (const r of repos) checkRepoAllowed(r, limits);
    if (skillsPath !== null) checkSkillsAllowed(skillsPath, limits);
  }
  const fallback =
    input.depsFallbackCommand === undefined
      ? null
      : clean('depsFallbackCommand', input.depsFallbackCommand, 1000, 'one shell command line, run in each repository directory');
  return {
    workspace,
    repos,
    embedSkills: Boolean(input.embedSkills),
    skillsPath,
    prebuildDeps: Boolean(input.prebuildDeps),
    depsFallbackCommand: fallback,
    targets,
    scheduleCron: input.schedule === undefined ? null : toCron(input.schedule),
    scheduleTimeZone: input.timeZone === undefined ? 'UTC' : timeZone(input.timeZone),
    enabled: Boolean(input.enabled),
  };
}
