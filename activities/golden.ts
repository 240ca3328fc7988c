// Golden build steps on a host: preload repositories, skills and dependencies into a temporary sandbox,
// and boot-verify the committed image before it may count.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type Docker from 'dockerode';
import type { PreloadLimits } from '../lib/config';
import { boundary, fail } from './boundary';
import { BOOT_LOG_CAP_BYTES, watchEntrypoint } from './bootCheck';
import { runExec, type ExecResult } from './docker';
import { withHeartbeat } from './heartbeats';
import { JobLog } from './jobLog';
import type { LogRef, LogSink } from '../catalog/logs';
import { isolatedGit, resolveRepo, resolveSkillsDir } from './preloadPaths';

/** Inside the sandbox: one empty file per repo whose dependency build finished. */
const DEPS_MARKERS = '/.snapflow/deps-built';

export interface GoldenHostDeps {
  docker: Docker;
  hostId: string;
  /** This host's SNAPFLOW_SKILLS_ROOT, SNAPFLOW_REPOS_ROOT and SNAPFLOW_REPO_HOSTS: nothing else is read. */
  preload: PreloadLimits;
  /** Where a golden build's preload output is kept. */
  logs?: LogSink;
}

export const WORKSPACE_DIR = '/workspace';
export const SKILLS_DIR = '/opt/snapflow/skills';

/** The directory a repository lands in: its last path segment without `.git`. */
export function repoDirName(repo: string): string {
  return basename(repo.replace(/\/+$/, '')).replace(/\.git$/, '') || 'repo';
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stderr: string }> {
  return new Promise((done, failed) => {
    // No shell: arguments are passed as they are, so nothing in a repo URL is interpreted.
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-4000)));
    child.on('error', failed);
    child.on('close', (code) => done({ code: code ?? -1, stderr }));
  });
}

/** Copies a local directory's contents into the container at `target` (created if missing). */
async function copyIn(docker: Docker, containerId: string, source: string, target: string): Promise<void> {
  await runExec(docker, { containerId, command: ['mkdir', '-p', target] });
  const tar = spawn('tar', ['-C', source, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await docker.getContainer(containerId).putArchive(tar.stdout, { path: target });
}

function tail(result: ExecResult): string {
  return (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-5).join(' | ').slice(0, 500);
}

export function createGoldenHostActivities(deps: GoldenHostDeps) {
  const { docker } = deps;

  async function preload(input: { containerId: string; repos: string[] }, log: JobLog): Promise<{ loaded: string[] }> {
    // Every source is checked before the first clone: a refused one means nothing is copied at all.
    const sources = await boundary(async () => input.repos.map((repo) => ({ repo, ...resolveRepo(repo, deps.preload) })));
    return withHeartbeat('preload repos', async () => {
      const loaded: string[] = [];
      for (const { repo, source, cloneFrom } of sources) {
        const scratch = mkdtempSync(join(tmpdir(), 'snapflow-repo-'));
        const git = isolatedGit(source);
        try {
          const name = repoDirName(repo);
          const from = source.kind === 'local' ? `file://${cloneFrom}` : cloneFrom;
          const cloned = await run('git', [...git.config, 'clone', '--depth', '1', '--', from, join(scratch, name)], git.env);
          if (cloned.code !== 0) log.push('stderr', Buffer.from(cloned.stderr));
          if (cloned.code !== 0)
            fail(
              'PRELOAD_FAILED',
              `could not clone ${repo} on host ${deps.hostId}: ${cloned.stderr.trim().split('\n').pop() ?? ''}`,
              'check the repository URL or path in the golden config',
            );
          await copyIn(docker, input.containerId, join(scratch, name), `${WORKSPACE_DIR}/${name}`);
          loaded.push(name);
          log.push('stdout', Buffer.from(`cloned ${repo} into ${WORKSPACE_DIR}/${name}\n`));
        } finally {
          rmSync(scratch, { recursive: true, force: true });
          rmSync(git.home, { recursive: true, force: true });
        }
      }
      return { loaded };
    });
  }

  async function buildDeps(
    input: { containerId: string; repoDirs: string[]; fallbackCommand?: string },
    log: JobLog,
  ): Promise<{ built: string[]; via: 'nix' | 'fallback' | 'none' }> {
    return withHeartbeat('build deps', async () => {
      const exec = (command: string[], workdir?: string, logged = false): Promise<ExecResult> =>
        runExec(
          docker,
          { containerId: input.containerId, command, workdir },
          logged ? { onBytes: (stream, data) => log.push(stream, data) } : {},
        );
      const withNix = (await exec(['sh', '-c', 'command -v nix-build'])).exitCode === 0;
      const built: string[] = [];
      for (const dir of input.repoDirs) {
        const path = `${WORKSPACE_DIR}/${dir}`;
        if ((await exec(['test', '-f', `${path}/tembo.nix`])).exitCode !== 0) continue;
        if (!withNix && !input.fallbackCommand) {
          fail(
            'NIX_UNAVAILABLE',
            `${dir}/tembo.nix needs Nix, which the base image does not have`,
            'use a base image with Nix, or set a fallback dependency command in the golden config',
          );
        }
        // A retry after a build that finished does not build again: the first attempt left its marker, named for this
        // container so that an image cannot ship one.
        const marker = `${DEPS_MARKERS}/${input.containerId.slice(0, 64)}-${dir}`;
        if ((await exec(['test', '-f', marker])).exitCode === 0) {
          built.push(dir);
          continue;
        }
        const result = withNix
          ? await exec(['nix-build', '--no-out-link', 'tembo.nix'], path, true)
          : await exec(['sh', '-c', input.fallbackCommand!], path, true);
        if (result.exitCode !== 0) fail('PRELOAD_FAILED', `dependency build for ${dir} exited ${result.exitCode}: ${tail(result)}`);
        await exec(['sh', '-c', 'mkdir -p "$(dirname "$0")" && : > "$0"', marker]);
        built.push(dir);
      }
      return { built, via: built.length === 0 ? 'none' : withNix ? 'nix' : 'fallback' };
    });
  }

  return {
    /** Clones each repository on the host (the sandbox has no network) and copies it into /workspace/<name>. */
    async preloadRepos(input: { containerId: string; repos: string[]; log?: LogRef }): Promise<{ loaded: string[] }> {
      const log = new JobLog(input.log && deps.logs, input.log);
      log.note(`== preload: ${input.repos.length} repo(s)\n`);
      try {
        return await preload(input, log);
      } finally {
        await log.flush();
      }
    },

    /** Copies the skills directory by its real path, which must be under SNAPFLOW_SKILLS_ROOT (links inside stay links). */
    async embedSkills(input: { containerId: string; path: string; log?: LogRef }): Promise<void> {
      const log = new JobLog(input.log && deps.logs, input.log);
      log.note(`== skills: ${input.path}\n`);
      const real = await boundary(async () => resolveSkillsDir(input.path, deps.preload, deps.hostId));
      await withHeartbeat('embed skills', () => copyIn(docker, input.containerId, real, SKILLS_DIR));
      await log.flush();
    },

    /**
     * Pre-builds dependencies from each preloaded repo's tembo.nix: with Nix when the image has it, else the
     * declared fallback command, else NIX_UNAVAILABLE — never a silent skip. Each build's output goes to the log.
     */
    async buildDeps(input: {
      containerId: string;
      repoDirs: string[];
      fallbackCommand?: string;
      log?: LogRef;
    }): Promise<{ built: string[]; via: 'nix' | 'fallback' | 'none' }> {
      const log = new JobLog(input.log && deps.logs, input.log);
      log.note(`== deps: ${input.repoDirs.join(', ') || 'no repos'}\n`);
      try {
        return await buildDeps(input, log);
      } finally {
        await log.flush();
      }
    },

    /**
     * Boots the image as a sandbox would (network none) and requires its entrypoint to exit 0 in time; with
     * `settleSeconds` (a long-lived agent entrypoint) it must instead still be running then, or have exited 0.
     * The entrypoint's output and the check's outcome go to the build's log.
     */
    async verifyBoot(input: {
      image: string;
      entrypoint: string;
      timeoutSeconds?: number;
      settleSeconds?: number;
      /** The size the image boots as: its memory, CPUs and the sandbox limits confine the check. */
      size?: string;
      log?: LogRef;
    }): Promise<{ output: string }> {
      const log = new JobLog(input.log && deps.logs, input.log, { capBytes: BOOT_LOG_CAP_BYTES });
      const limit = (input.settleSeconds ?? input.timeoutSeconds ?? 60) * 1000;
      log.note(
        `== boot: ${input.entrypoint} in ${input.image}: ${input.settleSeconds !== undefined ? `up once it still runs after ${limit / 1000} s` : `must exit 0 within ${limit / 1000} s`}\n`,
      );
      let verdict: string | undefined;
      try {
        const watched = await watchEntrypoint(docker, {
          image: input.image,
          entrypoint: input.entrypoint,
          size: input.size,
          windowMs: limit,
          log,
        });
        const output = watched.lastOutput.slice(-500);
        const seconds = (watched.ranMs / 1000).toFixed(1);
        if (watched.exitCode === undefined && input.settleSeconds !== undefined) {
          verdict = `booted: ${input.entrypoint} still running after ${seconds} s`;
          return { output }; // still up: booted
        }
        if (watched.exitCode === undefined)
          fail('VERIFY_FAILED', `${input.entrypoint} did not finish within ${limit / 1000}s when booting ${input.image}`);
        verdict = `${watched.exitCode === 0 ? 'booted: ' : ''}${input.entrypoint} exited ${watched.exitCode} after ${seconds} s`;
        if (watched.exitCode !== 0)
          fail(
            'VERIFY_FAILED',
            `${input.entrypoint} exited ${watched.exitCode} when booting ${input.image}${watched.killed ? ` (${watched.killed})` : ''}: ${output.slice(-300)}`,
            'the previous default is kept; fix the build inputs and build again',
          );
        return { output };
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 400)
          fail('VERIFY_FAILED', `${input.image} cannot start ${input.entrypoint}: ${(err as Error).message}`);
        throw err;
      } finally {
        // The verdict after the output (past a cut: after its true end).
        await log.endSegment();
        if (verdict) log.note(`${verdict}\n`);
        await log.flush();
      }
    },
  };
}

export type GoldenHostActivities = ReturnType<typeof createGoldenHostActivities>;
