// How the sandbox entity runs a job on its backend: the exec in a cancellation scope of its own (a cancel reaches
// the activity, which still answers with the job's end), a session left unsaved, and the job path of runs recorded
// before the lifecycle.
// The job handlers themselves (states and transitions) are in workflows/sandbox.ts.
import { CancellationScope } from '@temporalio/workflow';
import type { ExecResult } from '../activities/sandbox/backend';
import { describeFailure } from '../lib/errors';
import type { JobRequest, JobResult } from './contracts/sandbox';
import { reject } from './failures';
import { SandboxCore } from './sandboxCore';

export class SandboxJobs extends SandboxCore {
  /** The running job's scope, which a cancel cancels. */
  private jobScope?: { sequence: number; scope: CancellationScope };

  /** The running job, cancelled (a signal for another job, or none running, changes nothing). */
  cancelJob(input: { sequence?: number }): void {
    const running = this.jobScope;
    if (running && (input.sequence === undefined || input.sequence === running.sequence)) running.scope.cancel();
  }

  /**
   * Job `sequence` on the backend, its whole output in the log store. An exec that could not run (host gone,
   * container gone) leaves the sandbox stopped and refuses the job: the next one starts it again by the restore order.
   */
  protected async execJob(sequence: number, job: JobRequest, timeoutMs: number): Promise<ExecResult> {
    const { req, s } = this;
    let result: ExecResult;
    const jobScope = new CancellationScope();
    this.jobScope = { sequence, scope: jobScope };
    try {
      await this.sync();
      const log = { id: `job:${req.sandboxId}:${sequence}`, kind: 'job', subject: req.sandboxId, job: sequence } as const;
      result = await jobScope.run(() => this.runtime.exec(s.hostId!, this.handle()!, job, timeoutMs, log));
    } catch (err) {
      await CancellationScope.nonCancellable(() => this.stopContainer().catch(() => undefined));
      this.currentJob = undefined;
      await CancellationScope.nonCancellable(() => this.sync());
      this.show();
      const f = describeFailure(err);
      return reject('EXEC_FAILED', `job ${sequence} could not run: ${f.code}: ${f.message}`, {
        hint: 'run the job again: the sandbox starts again by the restore order',
      });
    }
    this.currentJob = undefined;
    this.jobScope = undefined;
    return result;
  }

  /** Before a stop: the session of a successful job whose save failed, saved now (a failure leaves the previous one latest). */
  protected async saveUnsavedSession(): Promise<string | undefined> {
    const { s } = this;
    let sessionSnapshotId: string | undefined;
    const unsaved = s.unsavedSequence;
    if (this.snapshots && unsaved !== undefined) {
      s.state = 'snapshotting'; // validators refuse a job or a promotion meanwhile
      await this.sync();
      try {
        sessionSnapshotId = await this.saveSession(unsaved, false);
        Object.assign(s, { unsavedSequence: undefined, lastSession: { sequence: unsaved, sessionSnapshotId } });
      } catch {
        // the previous session stays the latest; the container goes anyway
      }
    }
    return sessionSnapshotId;
  }

  /** A job as runs recorded before the lifecycle ran it: on a running sandbox only, its session saved before the answer. */
  protected async runLegacyJob(job: JobRequest): Promise<JobResult> {
    const { req, s } = this;
    this.handled++;
    s.state = 'busy'; // before the first await: the validators of everything else now refuse
    const sequence = ++s.jobs;
    this.currentJob = { sequence, command: job.command };
    this.show();
    try {
      await this.authorizeAs(job, 'sandbox.job');
    } catch (err) {
      Object.assign(s, { state: 'idle', jobs: s.jobs - 1 });
      this.currentJob = undefined;
      this.show();
      const f = describeFailure(err);
      return reject(f.code, f.message, { hint: f.hint });
    }
    try {
      await this.sync();
      const result = await this.runtime.exec(s.hostId!, this.handle()!, job);
      let sessionSnapshotId: string | undefined;
      let sessionError: string | undefined;
      if (result.exitCode === 0 && this.snapshots) {
        s.state = 'snapshotting';
        await this.sync();
        try {
          sessionSnapshotId = await this.saveSession(sequence);
        } catch (err) {
          const f = describeFailure(err);
          sessionError = `${f.code}: ${f.message}`;
        }
      }
      if (req.keepAlive) s.state = 'idle';
      else await this.stopContainer();
      return { sequence, ...result, sessionSnapshotId, sessionError, stopped: !req.keepAlive };
    } catch (err) {
      // The exec itself could not run (host gone, container gone): the sandbox is stopped, resume restarts it.
      await CancellationScope.nonCancellable(() => this.stopContainer().catch(() => undefined));
      const f = describeFailure(err);
      return reject('EXEC_FAILED', `job ${sequence} could not run: ${f.code}: ${f.message}`, {
        hint: 'resume the sandbox and run the job again',
      });
    } finally {
      this.currentJob = undefined;
      await CancellationScope.nonCancellable(() => this.sync());
      this.show();
    }
  }
}
