// Input validation, one module per domain: fields.ts (the shared screen, field rules and refusal), slugs.ts (the
// id and name patterns, also used by db/ check constraints), imageSnapshot.ts, agents.ts, sandboxes.ts.
export { DEFAULT_ENTRYPOINT, check, screenText, validateField, validationError, wholeNumber } from './fields';
export { NAME_PATTERN, NAME_REGEX, SLUG_PATTERN, SLUG_REGEX, SNAPSHOT_NAME_REGEX } from './slugs';
export {
  nextVersionedName,
  validateCreateImageSnapshot,
  type CreateImageSnapshotInput,
  type ValidatedImageSnapshot,
} from './imageSnapshot';
export {
  checkActor,
  checkAgentName,
  checkAgentSnapshotName,
  checkAgentWorkspace,
  checkHealthCommand,
  checkRolloutAgents,
  checkRolloutOptions,
  type RolloutOptions,
  type RolloutOptionsInput,
} from './agents';
export {
  checkFlag,
  checkIssueKey,
  checkJob,
  checkPinnedSnapshot,
  checkPromotedName,
  checkSandboxBase,
  checkSandboxId,
  checkSandboxDuration,
  checkSandboxSpec,
  checkSandboxWorkspace,
  type JobInput,
} from './sandboxes';
