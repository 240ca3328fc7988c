// Workspaces, their plan and their members. Operators create workspaces and set plans; a workspace's admins
// manage its members. Each change is decided and audited by the catalog function that makes it.
import { listAudit, type AuditEvent } from '../catalog/audit';
import {
  allWorkspaces,
  createWorkspace,
  deleteMember,
  listMembers,
  saveMember,
  setSandboxDefaults,
  setWorkspacePlan,
  workspacesOf,
  type Member,
  type Workspace,
} from '../catalog/workspaces';
import type { Db } from '../db/client';
import { PLANS, ROLES, type Plan, type Role } from '../lib/vocabulary';
import type { Config } from '../lib/config';
import { SYSTEM_SCOPE } from '../lib/ids';
import { checkSandboxDuration, screenText, validateField, validationError } from '../lib/validation';
import { requireAccess } from './access';
import { allowedGithubAccounts, setAllowedGithubAccounts } from '../catalog/connections';

const USER = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const user = (field: string, value: unknown): string => {
  const v = screenText(field, value, 'a user id: letters, digits, ".", "_", "@" or "-", e.g. alice@example.com', 128);
  if (!USER.test(v))
    throw validationError(field, `${field} is not a user id`, 'letters, digits, ".", "_", "@" or "-", e.g. alice@example.com');
  return v;
};
const oneOf = <T extends string>(field: string, value: unknown, allowed: readonly T[]): T => {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value))
    throw validationError(field, `${field} must be one of ${allowed.join(', ')}`, `e.g. --${field} ${allowed[0]}`);
  return value as T;
};
const checkWorkspaceSlug = (value: unknown): string => {
  const id = validateField('workspace', value);
  if (id === SYSTEM_SCOPE)
    throw validationError('workspace', `"${SYSTEM_SCOPE}" is the operators' workspace, not a workspace`, 'choose another id, e.g. acme');
  return id;
};

/** A GitHub user or organisation login (enterprise slugs follow the same rule); compared lowercase, as GitHub does. */
const GITHUB_LOGIN = /^[a-z0-9](?:[a-z0-9-]{0,38})$/;
const githubAccount = (value: unknown): string => {
  const v = screenText('allow', value, 'a GitHub user or organisation login, e.g. acme-org', 39).toLowerCase();
  if (!GITHUB_LOGIN.test(v))
    throw validationError('allow', `${JSON.stringify(v.slice(0, 40))} is not a GitHub login`, 'letters, digits and "-", e.g. acme-org');
  return v;
};

export class WorkspaceClient {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
  ) {}

  /** Operators only: a workspace with its first admin. */
  async create(input: { id: string; plan?: string; admin: string }): Promise<Workspace> {
    const id = checkWorkspaceSlug(input.id);
    const plan = oneOf<Plan>('plan', input.plan === undefined ? 'free' : input.plan, PLANS);
    const admin = user('admin', input.admin);
    return createWorkspace(this.db, this.config, { id, plan, admin });
  }

  /**
   * A workspace's sandbox defaults (its admins): how long a sandbox may sit idle and live. `null` goes back to the
   * built-in default (15 minutes, 24 hours); a sandbox's own --idle-timeout / --max-lifetime still wins.
   */
  async setDefaults(input: { id: string; idleTimeout?: string | number | null; maxLifetime?: string | number | null }): Promise<Workspace> {
    const id = checkWorkspaceSlug(input.id);
    const seconds = (field: 'idleTimeout' | 'maxLifetime', v: string | number | null | undefined) =>
      v === null ? null : v === undefined ? undefined : Math.max(1, Math.round(checkSandboxDuration(field, v)! / 1000));
    const set = {
      sandboxIdleTimeoutSeconds: seconds('idleTimeout', input.idleTimeout),
      sandboxMaxLifetimeSeconds: seconds('maxLifetime', input.maxLifetime),
    };
    return setSandboxDefaults(this.db, this.config, { id, ...set });
  }

  /** Operators only: free ↔ paid. */
  async setPlan(input: { id: string; plan: string }): Promise<Workspace> {
    const id = checkWorkspaceSlug(input.id);
    const plan = oneOf<Plan>('plan', input.plan, PLANS);
    return setWorkspacePlan(this.db, this.config, { id, plan });
  }

  /** Operators see every workspace; anyone else the ones they belong to. */
  async list(): Promise<Workspace[]> {
    return this.config.operators.includes(this.config.actor) ? allWorkspaces(this.db) : workspacesOf(this.db, this.config.actor);
  }

  async addMember(input: { workspace: string; user: string; role?: string }): Promise<Member> {
    const workspace = checkWorkspaceSlug(input.workspace);
    const userId = user('user', input.user);
    const role = oneOf<Role>('role', input.role === undefined ? 'member' : input.role, ROLES);
    return saveMember(this.db, this.config, { workspace, userId, role });
  }

  async removeMember(input: { workspace: string; user: string }): Promise<void> {
    const workspace = checkWorkspaceSlug(input.workspace);
    const userId = user('user', input.user);
    await deleteMember(this.db, this.config, { workspace, userId });
  }

  async members(workspace: string): Promise<Member[]> {
    workspace = checkWorkspaceSlug(workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return listMembers(this.db, workspace);
  }

  /**
   * Operators only: the GitHub accounts whose App installations the workspace may connect (replaces the list; an
   * empty list allows none). `snapflow github connect` of any other account's installation is GITHUB_ACCOUNT_MISMATCH.
   */
  async setGithubAccounts(input: { id: string; allow: string[] }): Promise<{ workspace: string; accounts: string[] }> {
    const id = checkWorkspaceSlug(input.id);
    if (!Array.isArray(input.allow))
      throw validationError('allow', 'allow must be a list of GitHub logins', 'repeat --allow once per account, e.g. --allow acme-org');
    if (input.allow.length > 20)
      throw validationError('allow', `${input.allow.length} accounts; at most 20 are allowed`, 'list the accounts the workspace uses');
    const accounts = [...new Set(input.allow.map(githubAccount))];
    const stored = await setAllowedGithubAccounts(this.db, this.config, { workspace: id, accounts });
    return { workspace: id, accounts: stored };
  }

  /** The GitHub accounts the workspace may connect (members may read them). */
  async githubAccounts(workspace: string): Promise<{ workspace: string; accounts: string[] }> {
    workspace = checkWorkspaceSlug(workspace);
    await requireAccess(this.db, this.config, workspace, 'snapshot.read');
    return { workspace, accounts: await allowedGithubAccounts(this.db, workspace) };
  }

  /** Who did what in the workspace, newest first (admins). */
  async audit(workspace: string, limit = 50): Promise<AuditEvent[]> {
    workspace = validateField('workspace', workspace);
    await requireAccess(this.db, this.config, workspace, 'workspace.manage');
    return listAudit(this.db, { workspace, limit });
  }
}
