// What each activity does to the world: `writes` changes something that outlives the call (a catalog row, an audit
// event, a container, an image, a stored blob, a VM or a file on the host); `reads` only looks (a check that makes and
// removes a throwaway container counts as a look). Typed over every activity the workers register, so a new activity
// does not compile until it is classified here, and the commit-then-stall test (which must see every writer retried
// after its commit) knows about it.
import type { AgentActivities } from './agents';
import type { AuthzActivities } from './authz';
import type { CatalogActivities } from './catalog';
import type { ConnectionActivities } from './connections';
import type { DefaultActivities } from './defaults';
import type { DockerActivities } from './docker';
import type { GoldenHostActivities } from './golden';
import type { GoldenCatalogActivities } from './goldenCatalog';
import type { HostCacheActivities } from './hostCache';
import type { ImageActivities } from './images';
import type { RestoreActivities } from './restore';
import type { RetirementActivities } from './retirement';
import type { RunActivities } from './runs';
import type { SandboxActivities } from './sandboxes';
import type { createHostSandboxActivities } from './sandbox/host';

/** Every activity a host worker registers for sandboxes: both backends' verbs, the machine steps, the routed three. */
type HostSandboxActivities = ReturnType<typeof createHostSandboxActivities>['activities'];

type ActivityType = keyof (AgentActivities &
  AuthzActivities &
  CatalogActivities &
  ConnectionActivities &
  DefaultActivities &
  DockerActivities &
  GoldenHostActivities &
  GoldenCatalogActivities &
  HostCacheActivities &
  ImageActivities &
  RestoreActivities &
  RetirementActivities &
  RunActivities &
  SandboxActivities &
  HostSandboxActivities);

export const activityEffects: Record<ActivityType, 'writes' | 'reads'> = {
  // agents
  loadRolloutSnapshot: 'reads',
  listRolloutAgents: 'reads',
  agentsOnSnapshot: 'reads',
  moveAgents: 'writes',
  moveAgentsBack: 'writes',
  // authz: every decision is an audit event
  authorizeOnSnapshot: 'writes',
  authorize: 'writes',
  authorizeHost: 'writes',
  // catalog
  upsertHost: 'writes',
  pickHost: 'reads',
  setHostStatus: 'writes',
  createPendingSnapshot: 'writes',
  markSnapshotActive: 'writes',
  markSnapshotFailed: 'writes',
  checkReplaceable: 'reads',
  recordSnapshotStep: 'writes',
  transferReferences: 'writes',
  listPendingSnapshots: 'reads',
  listInterruptedDeletes: 'reads',
  // GitHub connections: a validation records its verdict
  getGithubConnection: 'reads',
  requireGithubConnection: 'reads',
  markGithubConnection: 'writes',
  validateGithubConnection: 'writes',
  // defaults
  setDefault: 'writes',
  // issue pins
  pinIssueSnapshot: 'writes',
  unpinIssueSnapshot: 'writes',
  // Docker host (execInSandbox, removeSandbox, describeHost: containers' and vms' alike)
  describeHost: 'reads',
  createTempSandbox: 'writes',
  awaitEntrypoint: 'reads',
  execInSandbox: 'writes',
  commitSandbox: 'writes',
  pushImage: 'writes',
  removeSandbox: 'writes',
  removeLocalImage: 'writes',
  // golden build steps inside the temporary sandbox
  preloadRepos: 'writes',
  embedSkills: 'writes',
  buildDeps: 'writes',
  verifyBoot: 'reads',
  // golden catalog
  loadBuildConfig: 'reads',
  listOnlineHosts: 'reads',
  startBuild: 'writes',
  finishBuild: 'writes',
  noteGoldenLog: 'writes',
  registerGolden: 'writes',
  recordHostCache: 'writes',
  hostsServing: 'reads',
  evictionCandidates: 'reads',
  forgetHostCache: 'writes',
  // host cache
  cacheSnapshot: 'writes',
  evictSnapshot: 'writes',
  // image snapshots
  resolveImage: 'reads',
  pullImage: 'writes',
  verifyEntrypoint: 'reads',
  bootCheck: 'reads', // a throwaway container; its output appended to the build log under fixed sequence numbers
  storeImage: 'writes',
  // restore resolution
  loadRestoreInput: 'reads',
  explainRestore: 'reads',
  // snapshot deletes
  beginDelete: 'writes',
  deleteStoredImage: 'writes',
  finishDelete: 'writes',
  // other runs, as Temporal answers
  describeRun: 'reads',
  // sandbox catalog
  registerSandbox: 'writes',
  saveSandboxIssue: 'writes',
  updateSandbox: 'writes',
  saveSessionSnapshot: 'writes',
  loadSessionSnapshot: 'reads',
  // vm sandboxes
  startVmSandbox: 'writes',
  restoreVmSandbox: 'writes',
  snapshotVmSandbox: 'writes',
  evictVmState: 'writes',
  cacheVmState: 'writes',
  // the sandbox backends' verbs (activities/sandbox/backend.ts)
  containerBoot: 'writes',
  containerRestore: 'reads', // refused: a container has no saved machine to continue
  containerExec: 'writes',
  containerSaveSession: 'writes',
  containerStop: 'writes',
  vmBoot: 'writes',
  vmRestore: 'writes',
  vmExec: 'writes',
  vmSaveSession: 'writes',
  vmStop: 'writes',
};

/** Every activity type that changes something, sorted. */
export const writingActivities: readonly string[] = Object.entries(activityEffects)
  .filter(([, effect]) => effect === 'writes')
  .map(([type]) => type)
  .sort();
