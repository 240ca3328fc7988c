// The New Snapshot form is checked as it is typed, by the same rules the API applies (lib/validation, bundled
// into the console): each field on its own, so every field shows its own problem at once.
import { SnapflowError } from '../../lib/errors';
import { nextVersionedName, validateCreateImageSnapshot } from '../../lib/validation/imageSnapshot';

export interface SnapshotForm {
  name: string;
  image: string;
  entrypoint: string;
  runtime: string;
  size: string;
}

export type FieldProblems = Partial<Record<keyof SnapshotForm, string>>;

/** Values every rule accepts: a field is checked with the others set to these, so only its own problem shows. */
const GOOD: SnapshotForm = { name: 'ok', image: 'registry.invalid/ok:v1', entrypoint: '/app/start.sh', runtime: 'codex', size: 'small' };

function problemOf(workspace: string, form: SnapshotForm, field: keyof SnapshotForm): string | undefined {
  try {
    validateCreateImageSnapshot({ ...GOOD, workspace, [field]: form[field] });
    return undefined;
  } catch (err) {
    if (err instanceof SnapflowError) return err.hint ? `${err.message}: ${err.hint}` : err.message;
    return (err as Error).message;
  }
}

/** What is wrong with each field, as the API would say it; `taken` are the workspace's live names. */
export function checkSnapshotForm(workspace: string, form: SnapshotForm, taken: Map<string, string>): FieldProblems {
  const problems: FieldProblems = {};
  for (const field of Object.keys(GOOD) as Array<keyof SnapshotForm>) {
    const problem = problemOf(workspace, form, field);
    if (problem) problems[field] = problem;
  }
  const status = taken.get(form.name);
  // A failed name may be created again; a pending or active one is kept (same spec → the API returns it).
  if (!problems.name && status && status !== 'failed')
    problems.name = `a snapshot named "${form.name}" already exists (${status}): try "${nextVersionedName(form.name, [...taken.keys()])}"`;
  return problems;
}
