// The sandbox entity's fork handlers and the promotion of a stopped sandbox: both answer from a saved state, the
// running source saved on the spot (it keeps running), a stopped one's latest session published or handed over as is.
// The states and transitions of the other handlers are in workflows/sandbox.ts.
import { CancellationScope } from '@temporalio/workflow';
import { describeFailure } from '../lib/errors';
import type { ForkPoint, ForkRequest, PromoteRequest, PromoteResult } from './contracts/sandbox';
import { reject } from './failures';
import { SandboxJobs } from './sandboxJobs';
import { publishStoppedPromotion } from './sandboxPromotion';

export class SandboxForks extends SandboxJobs {
  /** Promotion needs a vm (a container keeps no machine); a stopped one publishes its latest session as it is. */
  validatePromote(_input: PromoteRequest): void {
    const { req } = this;
    if (!this.snapshots)
      reject('SANDBOX_CLASS_UNSUPPORTED', `sandbox ${req.sandboxId} is a container sandbox; snapshots exist only for vm sandboxes`, {
        hint: 'create the sandbox with --class vm',
      });
    if (this.s.state === 'stopped' && this.lifecycle) return; // its latest session is published as it is
    this.requireIdle('promote it');
  }

  /**
   * Promotion of a stopped sandbox: its latest session published as a golden, no machine started. The sandbox stays
   * stopped; `promoting` meanwhile, so a job or a resume waits (the validators refuse).
   */
  protected async promoteStopped(input: PromoteRequest): Promise<PromoteResult> {
    const { req, s } = this;
    this.handled++;
    s.state = 'promoting';
    this.show();
    try {
      await this.authorizeAs(input, 'sandbox.promote');
      const session = s.latestSessionSnapshotId ?? req.forkedFromSnapshotId;
      if (!session)
        reject('NOT_FOUND', `sandbox ${req.sandboxId} is stopped and has no session snapshot to promote`, {
          hint: `run a job in it first (it starts again): snapflow sandbox run ${req.sandboxId} -- …`,
        });
      return await publishStoppedPromotion(this.promotion({}), input, session!);
    } catch (err) {
      const f = describeFailure(err);
      return reject(f.code, `promotion of sandbox ${req.sandboxId} failed: ${f.message}`, { hint: f.hint });
    } finally {
      s.state = 'stopped';
      await CancellationScope.nonCancellable(() => this.sync());
      this.show();
    }
  }

  /** A fork asks for a running sandbox (saved on the spot) or a stopped one (its latest session): never mid-task. */
  validateFork(input: ForkRequest): void {
    const { req, s } = this;
    if (!input || typeof input.forkId !== 'string' || !input.forkId)
      reject('VALIDATION_FAILED', 'a fork request names the new sandbox: { forkId }', {
        field: 'forkId',
        hint: 'use snapflow sandbox fork',
      });
    if (s.state === 'stopped' || s.state === 'failed') {
      if (!s.latestSessionSnapshotId && !req.forkedFromSnapshotId)
        reject('NOT_FOUND', `sandbox ${req.sandboxId} is ${s.state} and has no session snapshot to fork`, {
          hint: this.snapshots
            ? `start it (snapflow sandbox start ${req.sandboxId}) and fork it while it runs, or run a job in it first: its session is saved`
            : `a container sandbox keeps no sessions: start it (snapflow sandbox start ${req.sandboxId}) and fork it while it runs`,
        });
      return;
    }
    this.requireIdle('be forked');
  }

  async fork(input: ForkRequest): Promise<ForkPoint> {
    const { req, s } = this;
    this.handled++;
    const stopped = s.state !== 'idle';
    if (!stopped) s.state = 'snapshotting'; // before the first await: a job or a promotion waits for the save
    this.show();
    try {
      await this.authorizeAs(input, 'sandbox.fork');
      if (stopped) return { snapshotId: (s.latestSessionSnapshotId ?? req.forkedFromSnapshotId)!, live: false };
      await this.sync();
      return { snapshotId: await this.saveForkPoint(input.forkId), live: true };
    } catch (err) {
      const f = describeFailure(err);
      return reject(f.code, `fork of sandbox ${req.sandboxId} failed: ${f.message}`, { hint: f.hint });
    } finally {
      if (!stopped) {
        s.state = 'idle'; // the source keeps running, whatever the save did
        await CancellationScope.nonCancellable(() => this.sync());
      }
      this.show();
    }
  }
}
