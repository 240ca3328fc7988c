// Who the token says the user is (GET /v1/me), and what the pages may offer them: a member never sees an
// admin's buttons (the API refuses those calls anyway).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';

export interface Membership {
  workspace: string;
  role: 'admin' | 'member';
}

export interface Me {
  user: string;
  operator: boolean;
  workspaces: Membership[];
  /** Where run links point, when the API says (TEMPORAL_UI_URL and the namespace). */
  temporalUiUrl?: string;
  namespace?: string;
}

interface MeAnswer {
  user?: string | { id?: string; name?: string };
  id?: string;
  operator?: boolean;
  isOperator?: boolean;
  workspaces?: Array<{ workspace?: string; id?: string; role?: string }>;
  temporal?: { uiUrl?: string; namespace?: string };
  temporalUiUrl?: string;
  namespace?: string;
}

/** The API's answer in the one shape the pages read. */
export function meFrom(answer: MeAnswer): Me {
  const user = typeof answer.user === 'string' ? answer.user : (answer.user?.id ?? answer.user?.name ?? answer.id ?? 'unknown');
  return {
    user,
    operator: answer.operator ?? answer.isOperator ?? false,
    workspaces: (answer.workspaces ?? [])
      .map((w) => ({ workspace: w.workspace ?? w.id ?? '', role: w.role === 'admin' ? 'admin' : 'member' }) as Membership)
      .filter((w) => w.workspace !== ''),
    temporalUiUrl: answer.temporalUiUrl ?? answer.temporal?.uiUrl,
    namespace: answer.namespace ?? answer.temporal?.namespace,
  };
}

export interface Session {
  me: Me;
  workspace: string;
  /** Admin of the current workspace, or a platform operator. */
  isAdmin: boolean;
  /** A run's page in the Temporal UI, for a run the API gave no link for. */
  runLink: (workflowId?: string | null, runId?: string | null) => string | undefined;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}

export function sessionFor(me: Me, workspace: string): Session {
  const role = me.workspaces.find((w) => w.workspace === workspace)?.role;
  return {
    me,
    workspace,
    isAdmin: me.operator || role === 'admin',
    runLink: (workflowId, runId) => {
      if (!workflowId || !me.temporalUiUrl) return undefined;
      const base = `${me.temporalUiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(me.namespace ?? 'default')}/workflows/${encodeURIComponent(workflowId)}`;
      return runId ? `${base}/${encodeURIComponent(runId)}/history` : base;
    },
  };
}
