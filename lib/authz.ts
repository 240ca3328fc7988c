// Who may do what: one table, decided by a pure function the workflows' first activity and the client share.
// Members work in their workspace; admins change what others rely on; custom golden snapshots need the paid
// plan; operators (SNAPFLOW_OPERATORS) run the platform and the system workspace.
import { SYSTEM_SCOPE } from './ids';
import type { Plan, Role } from './vocabulary';

export const ACTIONS = {
  'snapshot.read': { role: 'member' },
  'snapshot.create': { role: 'member' },
  /** `--replace`: moves defaults, pins and agents to the new version. */
  'snapshot.replace': { role: 'admin' },
  'snapshot.delete': { role: 'admin' },
  'snapshot.prune': { role: 'admin' },
  'github.connect': { role: 'admin' },
  'golden.config': { role: 'admin', paid: true },
  'golden.build': { role: 'admin', paid: true },
  'golden.set-default': { role: 'admin', paid: true },
  'sandbox.create': { role: 'member' },
  'sandbox.job': { role: 'member' },
  'sandbox.resume': { role: 'member' },
  'sandbox.destroy': { role: 'member' },
  // A fork reads the source (its session, or its live state saved on the spot) and creates a sandbox: a member's.
  'sandbox.fork': { role: 'member' },
  'sandbox.promote': { role: 'admin', paid: true },
  'issue.pin': { role: 'member' },
  'agent.manage': { role: 'admin' },
  'agent.rollout': { role: 'admin' },
  'workspace.manage': { role: 'admin' },
  /** Asked of the system workspace: operators only. */
  'storage.gc': { role: 'admin' },
} as const satisfies Record<string, { role: Role; paid?: boolean }>;
export type Action = keyof typeof ACTIONS;

export interface AccessFacts {
  actor: string;
  workspace: string;
  action: Action;
  operators: readonly string[];
  /** Null when the workspace is not registered. */
  registered: { plan: Plan } | null;
  /** The actor's role in that workspace; null when not a member. */
  role: Role | null;
}

export type AccessDecision =
  { allowed: true; as: 'operator' | Role } | { allowed: false; code: 'PERMISSION_DENIED' | 'PLAN_REQUIRED'; message: string; hint: string };

export function decideAccess(f: AccessFacts): AccessDecision {
  if (f.operators.includes(f.actor)) return { allowed: true, as: 'operator' };
  const need = ACTIONS[f.action];
  const paid = 'paid' in need && need.paid;
  if (f.workspace === SYSTEM_SCOPE) {
    return {
      allowed: false,
      code: 'PERMISSION_DENIED',
      message: `${f.actor} may not ${f.action} in the system workspace: it belongs to operators`,
      hint: 'ask an operator (SNAPFLOW_OPERATORS)',
    };
  }
  if (!f.registered) {
    return {
      allowed: false,
      code: 'PERMISSION_DENIED',
      message: `workspace ${f.workspace} does not exist, so ${f.actor} may not ${f.action} there`,
      hint: `an operator creates it: snapflow workspace create ${f.workspace} --admin <user>`,
    };
  }
  if (!f.role) {
    return {
      allowed: false,
      code: 'PERMISSION_DENIED',
      message: `${f.actor} is not a member of workspace ${f.workspace}`,
      hint: `a workspace admin adds them: snapflow member add ${f.actor} --workspace ${f.workspace}`,
    };
  }
  if (need.role === 'admin' && f.role !== 'admin') {
    return {
      allowed: false,
      code: 'PERMISSION_DENIED',
      message: `${f.action} in ${f.workspace} needs the admin role; ${f.actor} is a member`,
      hint: `ask an admin of ${f.workspace}, or to be made one: snapflow member add ${f.actor} --role admin --workspace ${f.workspace}`,
    };
  }
  if (paid && f.registered.plan !== 'paid') {
    return {
      allowed: false,
      code: 'PLAN_REQUIRED',
      message: `custom golden snapshots (${f.action}) are a paid-plan feature; workspace ${f.workspace} is on the free plan and uses the system defaults`,
      hint: 'upgrade the workspace: snapflow workspace plan <id> paid (operators)',
    };
  }
  return { allowed: true, as: f.role };
}
