// Who asks, in a form the workers can check: an HMAC-SHA256 (key SNAPFLOW_ACTOR_KEY) over the actor, the workspace,
// the workflow id it is for and an expiry. The API (from the token it authenticated) and the trusted direct client put
// one into every workflow request and Update; the control worker's authorization activity verifies it, so a Temporal
// client that names an actor it cannot sign for is refused. Not imported by workflows/ (Node crypto).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SnapflowError } from './errors';

export interface ActorClaim {
  v: 1;
  actor: string;
  /** The workspace the request names ('' when it names none, e.g. an Update to a sandbox: its workflow has one). */
  workspace: string;
  /** The run it is for; with `prefix`, every run whose id starts with it and "-" (a Schedule's runs). */
  workflowId: string;
  prefix?: boolean;
  /** Unix seconds. */
  exp: number;
  sig: string;
}

/** A request's claim lives this long: long enough for a start and its first step, short enough to be useless later. */
export const CLAIM_TTL_SECONDS = 3600;
/** A Schedule's claim lives as long as its schedule is likely to (it is made again whenever the config is set). */
export const SCHEDULE_CLAIM_TTL_SECONDS = 10 * 365 * 24 * 3600;

const text = (c: Omit<ActorClaim, 'sig'>): string =>
  ['snapflow-actor-claim', c.v, c.actor, c.workspace, c.workflowId, c.prefix ? 'prefix' : 'exact', c.exp].join('\n');

const mac = (key: Buffer, c: Omit<ActorClaim, 'sig'>): string => createHmac('sha256', key).update(text(c)).digest('base64url');

export function signClaim(
  key: Buffer,
  input: { actor: string; workspace?: string; workflowId: string; prefix?: boolean; ttlSeconds?: number; now?: number },
): ActorClaim {
  const claim: Omit<ActorClaim, 'sig'> = {
    v: 1,
    actor: input.actor,
    workspace: input.workspace ?? '',
    workflowId: input.workflowId,
    ...(input.prefix ? { prefix: true } : {}),
    exp: Math.floor((input.now ?? Date.now()) / 1000) + (input.ttlSeconds ?? CLAIM_TTL_SECONDS),
  };
  return { ...claim, sig: mac(key, claim) };
}

export interface ClaimCheck {
  actor: string;
  workspace: string;
  workflowId: string;
  /** Set by Temporal for a child run: the parent (our own workflow code) checked its caller before starting it. */
  parentWorkflowId?: string;
}

const refuse = (why: string): never => {
  throw new SnapflowError({
    code: 'PERMISSION_DENIED',
    field: 'actor',
    message: `the request's actor is not vouched for: ${why}`,
    hint: 'start workflows through the snapflow API or a client holding SNAPFLOW_ACTOR_KEY; a raw Temporal client cannot name an actor',
  });
};

/** Throws PERMISSION_DENIED unless `claim` was signed with `key` for this actor, workspace and run, and is not expired. */
export function verifyClaim(key: Buffer, claim: unknown, check: ClaimCheck, now = Date.now()): void {
  if (check.parentWorkflowId !== undefined) return;
  if (typeof claim !== 'object' || claim === null) return refuse('it carries no signed claim');
  const c = claim as Partial<ActorClaim>;
  if (c.v !== 1 || typeof c.sig !== 'string' || typeof c.actor !== 'string' || typeof c.workflowId !== 'string')
    return refuse('malformed claim');
  if (typeof c.workspace !== 'string' || typeof c.exp !== 'number') return refuse('malformed claim');
  const expected = Buffer.from(
    mac(key, { v: 1, actor: c.actor, workspace: c.workspace, workflowId: c.workflowId, prefix: c.prefix, exp: c.exp }),
  );
  const given = Buffer.from(c.sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return refuse('the claim signature does not match');
  if (c.exp * 1000 <= now) return refuse('the claim has expired');
  if (c.actor !== check.actor) return refuse(`the claim is for another actor`);
  if (c.workspace !== '' && c.workspace !== check.workspace) return refuse('the claim is for another workspace');
  const forRun = c.prefix ? check.workflowId.startsWith(`${c.workflowId}-`) : check.workflowId === c.workflowId;
  if (!forRun) return refuse('the claim is for another run');
}
