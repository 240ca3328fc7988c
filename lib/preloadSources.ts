// Where a golden build may take repositories and skills from: only under the host directories and from the git
// hosts the operator configured. Checked on the path as written when the config is set, and again on the host
// on the resolved real path before anything is read (activities/preloadPaths.ts).
import type { PreloadLimits } from './config';
import { SnapflowError } from './errors';
import { quoteInput } from './imageRef';

export type RepoSource = { kind: 'local'; path: string } | { kind: 'remote'; host: string; hostname: string };

/** `path` is `root` or inside it, compared segment by segment (so /srv/repos-evil is not inside /srv/repos). */
export function isWithin(root: string, path: string): boolean {
  const base = root.replace(/\/+$/, '');
  return path === base || path.startsWith(`${base}/`);
}

/** A local path or file:// URL names a host path; anything else names a git host (host or host:port, lowercase). */
export function repoSource(repo: string): RepoSource {
  if (repo.startsWith('/')) return { kind: 'local', path: repo };
  const scheme = /^([a-z+]+):\/\//i.exec(repo)?.[1]?.toLowerCase();
  if (scheme === 'file') return { kind: 'local', path: repo.slice('file://'.length).replace(/^localhost(?=\/)/, '') };
  if (scheme) {
    const authority = repo.slice(scheme.length + 3).split('/')[0] ?? '';
    const host = authority.slice(authority.lastIndexOf('@') + 1).toLowerCase();
    return { kind: 'remote', host, hostname: host.replace(/:\d+$/, '') };
  }
  // scp-like: user@host:path
  const host = (/^[^@]+@([^:]+):/.exec(repo)?.[1] ?? '').toLowerCase();
  return { kind: 'remote', host, hostname: host };
}

const refuse = (field: string, message: string, hint: string): never => {
  throw new SnapflowError({ code: 'VALIDATION_FAILED', field, message, hint });
};

/** Refuses a repository outside the configured root or hosts (VALIDATION_FAILED, field `repos`). */
export function checkRepoAllowed(repo: string, limits: PreloadLimits): RepoSource {
  const source = repoSource(repo);
  if (source.kind === 'local') {
    if (!limits.reposRoot)
      refuse(
        'repos',
        `local repository ${quoteInput(repo)} cannot be cloned: no repository directory is configured`,
        'set SNAPFLOW_REPOS_ROOT on the host workers and the CLI, and put the repository under it',
      );
    if (source.path.includes('%') || source.path.split('/').includes('..') || !isWithin(limits.reposRoot!, source.path))
      refuse('repos', `local repository ${quoteInput(repo)} is outside ${limits.reposRoot}`, `use a repository under ${limits.reposRoot}`);
    return source;
  }
  if (!limits.repoHosts.includes(source.host) && !limits.repoHosts.includes(source.hostname))
    refuse(
      'repos',
      `repository host ${quoteInput(source.host || repo)} is not one snapflow may clone from`,
      limits.repoHosts.length
        ? `use one of ${limits.repoHosts.join(', ')}, or ask an operator to add the host to SNAPFLOW_REPO_HOSTS`
        : 'ask an operator to list the host in SNAPFLOW_REPO_HOSTS',
    );
  return source;
}

/** Refuses skills when embedding is disabled (SKILLS_NOT_CONFIGURED) or the path is outside the root. */
export function checkSkillsAllowed(path: string, limits: PreloadLimits): void {
  if (!limits.skillsRoot)
    throw new SnapflowError({
      code: 'SKILLS_NOT_CONFIGURED',
      field: 'skillsPath',
      message: 'embedding skills is disabled: no skills directory is configured',
      hint: 'set SNAPFLOW_SKILLS_ROOT on the host workers and the CLI, and keep skills under it',
    });
  if (path.split('/').includes('..') || !isWithin(limits.skillsRoot, path))
    refuse('skillsPath', `skills path ${quoteInput(path)} is outside ${limits.skillsRoot}`, `use a directory under ${limits.skillsRoot}`);
}
