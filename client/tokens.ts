// API tokens and "who am I": the same calls for the CLI in direct mode and for the API. Tokens are decided in the
// catalog (operators make them for anyone, others for themselves); the bootstrap makes the first operator token.
import { bootstrapOperatorToken, createToken, listTokens, membershipsOf, revokeToken, type TokenView } from '../catalog/tokens';
import type { Db } from '../db/client';
import type { Config } from '../lib/config';
import { ROLES, type Role } from '../lib/vocabulary';
import { screenText, validateField, validationError } from '../lib/validation';

const USER = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;
const USER_HINT = 'a user id: letters, digits, ".", "_", "@" or "-", e.g. alice@example.com';
/** Tokens live at most a year: a forgotten one expires. */
const MAX_TOKEN_DAYS = 366;

function checkUser(value: unknown): string {
  const v = screenText('user', value, USER_HINT, 128);
  if (!USER.test(v)) throw validationError('user', 'user is not a user id', USER_HINT);
  return v;
}

/** `30d`, `12h`, `90m`; at most a year. */
export function parseTokenExpiry(value: unknown, now = Date.now()): Date | undefined {
  if (value === undefined || value === null) return undefined;
  const hint = 'e.g. --expires 30d (m, h or d; at most 366d)';
  const m = typeof value === 'string' ? /^(\d{1,6})(m|h|d)$/.exec(value) : null;
  if (!m) throw validationError('expires', 'expires must be a duration like 30d', hint);
  const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
  if (ms < 60_000 || ms > MAX_TOKEN_DAYS * 86_400_000) throw validationError('expires', 'expires must be from 1m to 366d', hint);
  return new Date(now + ms);
}

export interface CreateTokenInput {
  user: string;
  workspace?: string;
  role?: string;
  expires?: string;
}

export interface Me {
  user: string;
  operator: boolean;
  workspaces: Array<{ id: string; role: Role }>;
}

export class TokenClient {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
  ) {}

  async create(input: CreateTokenInput): Promise<{ token: string; record: TokenView }> {
    const user = checkUser(input.user);
    const workspace = input.workspace === undefined ? undefined : validateField('workspace', input.workspace);
    if (input.role !== undefined && !(ROLES as readonly string[]).includes(input.role))
      throw validationError('role', `role must be one of ${ROLES.join(', ')}`, 'e.g. --role member');
    if (input.role !== undefined && workspace === undefined)
      throw validationError('role', 'a role narrows a token to one workspace', 'add --workspace <id>');
    return createToken(this.db, this.config, {
      user,
      workspace,
      role: input.role as Role | undefined,
      expiresAt: parseTokenExpiry(input.expires),
    });
  }

  /** The first operator token (direct database access); another only with a live operator token's word. */
  async bootstrapOperator(input: {
    user?: string;
    authorisedBy?: string;
    expires?: string;
  }): Promise<{ token: string; record: TokenView }> {
    const user = checkUser(input.user ?? this.config.operators[0]);
    if (!this.config.operators.includes(user))
      throw validationError('user', `${user} is not one of SNAPFLOW_OPERATORS`, `add them to SNAPFLOW_OPERATORS, or omit --user`);
    return bootstrapOperatorToken(this.db, { user, authorisedBy: input.authorisedBy, expiresAt: parseTokenExpiry(input.expires) });
  }

  list(): Promise<TokenView[]> {
    return listTokens(this.db, this.config);
  }

  revoke(id: string): Promise<TokenView> {
    return revokeToken(this.db, this.config, screenText('id', id, 'the token id `snapflow token list` shows', 64));
  }

  /** Who this client acts as, and where. */
  async me(scope?: { workspace: string | null; role: Role | null }): Promise<Me> {
    const user = this.config.actor;
    let workspaces = await membershipsOf(this.db, user);
    if (scope?.workspace) {
      workspaces = workspaces
        .filter((w) => w.id === scope.workspace)
        .map((w) => ({ id: w.id, role: scope.role === 'member' ? 'member' : w.role }));
    }
    return { user, operator: this.config.operators.includes(user) && !scope?.workspace, workspaces };
  }
}
