// Local bare git repositories and skill directories for golden builds (no network).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

function git(cwd: string, ...args: string[]): void {
  const r = spawnSync(
    'git',
    ['-c', 'user.name=snapflow-test', '-c', 'user.email=test@snapflow.local', '-c', 'init.defaultBranch=main', ...args],
    { cwd, encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr}`);
}

/** A bare repository at `<dir>/<name>.git` holding the given files in one commit. */
export function makeBareRepo(dir: string, name: string, files: Record<string, string>): string {
  const work = mkdtempSync(join(dir, `${name}-work-`));
  git(work, 'init', '-q');
  for (const [path, content] of Object.entries(files)) writeFileSync(join(work, path), content);
  git(work, 'add', '.');
  git(work, 'commit', '-q', '-m', 'seed');
  const bare = join(dir, `${name}.git`);
  git(dir, 'clone', '-q', '--bare', work, bare);
  return bare;
}

export function makeSkillsDir(dir: string, files: Record<string, string>): string {
  const skills = join(dir, 'skills');
  mkdirSync(skills, { recursive: true });
  for (const [path, content] of Object.entries(files)) writeFileSync(join(skills, path), content);
  return skills;
}
