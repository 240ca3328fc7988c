// Agents and the catalog side of a rollout: which agents a rollout covers, moving them onto a snapshot and back.
// Every move is idempotent, so a retried activity (or a replayed compensation) never moves an agent twice.
import {
  agentNamesOn,
  moveAgentsHome,
  moveAgentsOnto,
  rolloutAgents,
  rolloutSnapshot,
  type AgentMove,
  type RolloutAgent,
  type RolloutSnapshot,
} from '../catalog/agents';
import type { Db } from '../db/client';
import { boundary, writeOnce } from './boundary';

export type { AgentMove, RolloutAgent, RolloutSnapshot } from '../catalog/agents';

export function createAgentActivities(deps: { db: Db }) {
  const { db } = deps;
  return {
    /** The snapshot a rollout moves agents to: active, in the workspace or system workspace, with what `--auto` boots. */
    async loadRolloutSnapshot(input: { workspace: string; snapshotId: string }): Promise<RolloutSnapshot> {
      return boundary(() => rolloutSnapshot(db, input));
    },

    /** The named agents in the order given (or all of the workspace's, by name); NOT_FOUND names every unknown one. */
    async listRolloutAgents(input: { workspace: string; agents: string[] | 'all' }): Promise<RolloutAgent[]> {
      return boundary(() => rolloutAgents(db, input));
    },

    /** Names of the workspace's agents running on a snapshot (those a `--replace --rollout` hands over). */
    async agentsOnSnapshot(input: { workspace: string; snapshotId: string }): Promise<string[]> {
      return boundary(() => agentNamesOn(db, input));
    },

    /**
     * Moves each agent from the snapshot it was on when the rollout began onto the new one, remembering where it came
     * from. `elsewhere`: agents someone else moved meanwhile, left alone. A retry moves nobody twice.
     */
    async moveAgents(input: AgentMove): Promise<{ moved: string[]; elsewhere: string[] }> {
      return writeOnce(db, (tx) => moveAgentsOnto(tx, input));
    },

    /**
     * Moves agents still on the new snapshot back to exactly the snapshot each came from. `stranded`: agents whose
     * origin is no longer active (deleted meanwhile), so they stay.
     */
    async moveAgentsBack(input: AgentMove): Promise<{ movedBack: string[]; stranded: string[] }> {
      return writeOnce(db, (tx) => moveAgentsHome(tx, input));
    },
  };
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;
