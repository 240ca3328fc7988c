// Requests name their workspace `workspace`; runs started before that (and Schedules created then) carried it as
// `scope`. Reading either keeps their histories replaying and their scheduled runs working.
export function withWorkspace<T extends { workspace: string }>(req: T): T {
  const legacy = (req as { scope?: string }).scope;
  return req.workspace === undefined && legacy !== undefined ? { ...req, workspace: legacy } : req;
}
