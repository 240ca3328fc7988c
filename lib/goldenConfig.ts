// Validation of a golden build config (per workspace, or `system`), before it is stored or scheduled.
import { SnapflowError } from './errors';
import { SYSTEM_SCOPE } from './ids';
import { RUNTIMES, findPreset, type Runtime } from './presets';

export interface GoldenConfigInput {
  workspace: string;
  repos?: string[];
  embedSkills?: boolean;
  skillsPath?: string;
  prebuildDeps?: boolean;
  depsFallbackCommand?: string;
  /** `size:runtime` strings (e.g. `small:codex`) or objects. */
  targets: Array<string | { size: string; runtime: string }>;
  /** Five-field cron (`0 3 * * *`) or a time of day (`03:00`). */
  schedule?: string;
  timeZone?: string;
  enabled?: boolean;
}

export interface GoldenConfig {
  scope: string;
  repos: string[];
  embedSkills: boolean;
  skillsPath: string | null;
  prebuildDeps: boolean;
  depsFallbackCommand: string | null;
  targets: Array<{ size: string; runtime: Runtime }>;
  scheduleCron: string | null;
  scheduleTimeZone: string;
  enabled: boolean;
}

const refuse = (field: string, message: string, hint: string): never => {
  throw new SnapflowError({ code: 'VALIDATION_FAILED', field, message, hint });
};
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const CONTROL = /[\u0000-\u001f\u007f]/;
const clean = (field: string, value: string, max: number, hint: string): string => {
  if (value.length > max) refuse(field, `${field} is ${value.length} characters long; at most ${max} are accepted`, hint);
  if (CONTROL.test(value)) refuse(field, `${field} contains a control character`, hint);
  return value;
};

/** A git URL (https, ssh, git@host:path) or an absolute local path; never something git would read as an option. */
function repo(value: string): string {
  const hint = 'use https://host/org/repo.git, git@host:org/repo.git or an absolute path to a repository';
  clean('repos', value, 500, hint);
  if (value.startsWith('-')) refuse('repos', `repository "${value.slice(0, 40)}" looks like a command-line option`, hint);
  const ok = /^(https?|ssh|git|file):\/\/[^\s]+$/.test(value) || /^[\w.-]+@[\w.-]+:[\w./-]+$/.test(value) || /^\/[\w./@+-]+$/.test(value);
  if (!ok) refuse('repos', `repository "${value.slice(0, 40)}" is not a git URL or absolute path`, hint);
  return value;
}

/** `03:00` → `0 3 * * *`; a five-field cron is checked field by field (numbers, ranges, steps, lists, `*`). */
export function toCron(schedule: string): string {
  const hint = 'use a time of day like 03:00, or a five-field cron like "0 3 * * *"';
  clean('schedule', schedule, 100, hint);
  const time = /^(\d{1,2}):(\d{2})$/.exec(schedule.trim());
  if (time) {
    const [hour, minute] = [Number(time[1]), Number(time[2])];
    if (hour > 23 || minute > 59) refuse('schedule', `${schedule} is not a time of day`, hint);
    return `${minute} ${hour} * * *`;
  }
  const fields = schedule.trim().split(/\s+/);
  const limits = [59, 23, 31, 12, 7];
  if (fields.length !== 5) refuse('schedule', `"${schedule.slice(0, 40)}" has ${fields.length} fields; cron needs 5`, hint);
  fields.forEach((field, i) => {
    for (const part of field.split(',')) {
      const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
      const numbers = m?.[1] === '*' ? [] : (m?.[1]?.split('-').map(Number) ?? [NaN]);
      if (!m || numbers.some((n) => Number.isNaN(n) || n > limits[i]!) || (m[2] !== undefined && Number(m[2]) === 0)) {
        refuse('schedule', `cron field ${i + 1} "${field.slice(0, 20)}" is not valid`, hint);
      }
    }
  });
  return fields.join(' ');
}

function timeZone(value: string): string {
  const hint = 'use an IANA time zone such as UTC or Europe/Paris';
  clean('timeZone', value, 64, hint);
  try {
    new Intl.DateTimeFormat('en', { timeZone: value });
  } catch {
    refuse('timeZone', `"${value}" is not a known time zone`, hint);
  }
  return value;
}

export function validateGoldenConfig(input: GoldenConfigInput): GoldenConfig {
  const scope = input.workspace;
  if (typeof scope !== 'string' || (scope !== SYSTEM_SCOPE && !/^[a-z0-9][a-z0-9-]{0,62}$/.test(scope))) {
    refuse('workspace', 'workspace must be a lowercase slug or "system"', 'e.g. --workspace acme');
  }
  const repos = (input.repos ?? []).map(repo);
  if (repos.length > 20) refuse('repos', `${repos.length} repositories; at most 20 are preloaded`, 'keep the golden image to the repositories most jobs need');
  const targets = input.targets.map((t) => {
    const [size, runtime] = typeof t === 'string' ? t.split(':') : [t.size, t.runtime];
    if (!size || !findPreset(size)) refuse('targets', `target size "${String(size).slice(0, 20)}" is not a size preset`, 'use small, medium or large, e.g. --target small:codex');
    if (!runtime || !(RUNTIMES as readonly string[]).includes(runtime)) refuse('targets', `target runtime "${String(runtime).slice(0, 20)}" is not one of ${RUNTIMES.join(', ')}`, 'e.g. --target small:codex');
    return { size: size!, runtime: runtime as Runtime };
  });
  if (targets.length === 0) refuse('targets', 'at least one target size/profile is needed', 'e.g. --target small:codex');
  if (new Set(targets.map((t) => `${t.size}:${t.runtime}`)).size !== targets.length) refuse('targets', 'a target is listed twice', 'list each size:runtime once');
  if (input.embedSkills && !input.skillsPath) refuse('skillsPath', 'embedding skills needs the skills directory', 'pass --skills-path /abs/path/to/skills');
  if (input.skillsPath !== undefined && !/^\/[\w./@+-]*$/.test(clean('skillsPath', input.skillsPath, 500, 'an absolute path'))) {
    refuse('skillsPath', 'skills path must be an absolute path', 'e.g. /srv/snapflow/skills');
  }
  const fallback = input.depsFallbackCommand === undefined ? null : clean('depsFallbackCommand', input.depsFallbackCommand, 1000, 'one shell command line, run in each repository directory');
  return {
    scope,
    repos,
    embedSkills: Boolean(input.embedSkills),
    skillsPath: input.skillsPath ?? null,
    prebuildDeps: Boolean(input.prebuildDeps),
    depsFallbackCommand: fallback,
    targets,
    scheduleCron: input.schedule ? toCron(input.schedule) : null,
    scheduleTimeZone: timeZone(input.timeZone ?? 'UTC'),
    enabled: Boolean(input.enabled),
  };
}
