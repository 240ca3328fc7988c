// The host's own check of what a golden build reads: the real path (symlinks resolved) of a skills directory or
// local repository must be under the configured root, and git runs without the host's identity.
import { mkdtempSync, realpathSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PreloadLimits } from '../lib/config';
import { SnapflowError } from '../lib/errors';
import { checkRepoAllowed, checkSkillsAllowed, isWithin, type RepoSource } from '../lib/preloadSources';

function realOrNothing(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

function outside(field: string, what: string, root: string): SnapflowError {
  return new SnapflowError({
    code: 'VALIDATION_FAILED',
    field,
    message: `${what} resolves outside ${root} on this host`,
    hint: `keep it, and anything it links to, under ${root}`,
  });
}

/** The skills directory to copy: its real path, under the real skills root, or a typed refusal. */
export function resolveSkillsDir(path: string, limits: PreloadLimits, hostId: string): string {
  checkSkillsAllowed(path, limits);
  const root = realOrNothing(limits.skillsRoot!);
  const real = realOrNothing(path);
  if (!root || !real || !statSync(real).isDirectory())
    throw new SnapflowError({
      code: 'PRELOAD_FAILED',
      message: `skills directory ${path} does not exist on host ${hostId}`,
      hint: 'set the golden config skills path to a directory present on every host worker',
    });
  if (!isWithin(root, real)) throw outside('skillsPath', `skills path ${path}`, limits.skillsRoot!);
  return real;
}

/** What git clones: a local repository by its real path (under the real repos root), or an allowed remote URL. */
export function resolveRepo(repo: string, limits: PreloadLimits): { source: RepoSource; cloneFrom: string } {
  const source = checkRepoAllowed(repo, limits);
  if (source.kind === 'remote') return { source, cloneFrom: repo };
  const root = realOrNothing(limits.reposRoot!);
  const real = realOrNothing(source.path);
  // A missing path is left to git, which reports it as a failed clone; only an existing one can climb out.
  if (root && real && !isWithin(root, real)) throw outside('repos', `repository ${repo}`, limits.reposRoot!);
  return { source, cloneFrom: real ?? source.path };
}

/**
 * git's arguments and environment without the host's identity: no system or user config, an empty HOME, no
 * credential helper, no ssh agent or keys, no prompts, no redirects to other hosts, no `ext::` transports;
 * the file transport only for an allowed local repository.
 */
export function isolatedGit(source: RepoSource): { config: string[]; env: NodeJS.ProcessEnv; home: string } {
  const home = mkdtempSync(join(tmpdir(), 'snapflow-git-home-'));
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'PATH' || key === 'LANG' || key === 'LC_ALL' || key === 'TMPDIR') env[key] = value;
  }
  Object.assign(env, {
    HOME: home,
    XDG_CONFIG_HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: 'false',
    SSH_ASKPASS: 'false',
    GIT_SSH_COMMAND: 'false',
  });
  const config = [
    '-c',
    'credential.helper=',
    '-c',
    'core.askPass=',
    '-c',
    'http.followRedirects=false',
    '-c',
    'protocol.ext.allow=never',
    '-c',
    `protocol.file.allow=${source.kind === 'local' ? 'always' : 'never'}`,
  ];
  return { config, env, home };
}
