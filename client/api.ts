// The client over the HTTP API: only SNAPFLOW_API_URL and a token, no database, no Temporal connection, so a
// service holding it can do what its token allows and nothing more. Its calls mirror SnapflowClient's, so the CLI
// runs on either. Importable alone (`snapflow/api-client`): it loads no worker, Docker or database code.
import { SnapflowError, isErrorCode } from '../lib/errors';
import type { OutputChunk } from '../lib/jobOutput';

export interface ApiClientOptions {
  url: string;
  token: string;
  /** Per request, except a job's stream; default 60 s. */
  timeoutMs?: number;
}

type Query = Record<string, string | number | boolean | undefined>;

const seg = (value: string): string => encodeURIComponent(value);

export class SnapflowApiClient {
  private readonly base: string;

  constructor(private readonly options: ApiClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new SnapflowError({
        code: 'CONFIG_INVALID',
        field: 'SNAPFLOW_API_URL',
        message: 'SNAPFLOW_API_URL must be a URL',
        hint: 'set it like SNAPFLOW_API_URL=http://127.0.0.1:8787',
      });
    }
    this.base = url.toString().replace(/\/+$/, '');
  }

  /** The API answers a typed failure as problem+json: it comes back as the same SnapflowError. */
  async request<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
    const res = await this.fetch(method, path, body, query);
    const text = await res.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!res.ok) throw problemError(res.status, parsed);
    return parsed as T;
  }

  private async fetch(method: string, path: string, body?: unknown, query?: Query, stream = false): Promise<Response> {
    const qs = query
      ? Object.entries(query)
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${seg(k)}=${seg(String(v))}`)
          .join('&')
      : '';
    try {
      return await fetch(`${this.base}${path}${qs ? `?${qs}` : ''}`, {
        method,
        headers: {
          authorization: `Bearer ${this.options.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(stream ? { accept: 'text/event-stream' } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: stream ? undefined : AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
      });
    } catch (err) {
      throw new SnapflowError({
        code: 'TEMPORAL_UNAVAILABLE',
        field: 'SNAPFLOW_API_URL',
        message: `the snapflow API is not reachable at ${this.base}: ${(err as Error).message}`,
        hint: 'check SNAPFLOW_API_URL (`snapflow login --url …`), or start it with `npm start`',
      });
    }
  }

  me(): Promise<{ user: string; operator: boolean; workspaces: Array<{ id: string; role: string }> }> {
    return this.request('GET', '/v1/me');
  }

  readonly snapshots = {
    create: (input: {
      workspace: string;
      name: string;
      image: string;
      entrypoint?: string;
      runtime: string;
      size: string;
      replace?: boolean;
      allowFloatingTag?: boolean;
    }) => {
      const { workspace, ...body } = input;
      return this.request<Record<string, unknown> & { name: string; status: string }>(
        'POST',
        `/v1/workspaces/${seg(workspace)}/snapshots`,
        body,
      );
    },
    get: (input: { workspace: string; name: string }) =>
      this.request<{ snapshot: Record<string, unknown>; events: unknown[]; uiLink?: string }>(
        'GET',
        `/v1/workspaces/${seg(input.workspace)}/snapshots/${seg(input.name)}`,
      ),
    /** Every page, in order. */
    list: async (input: { workspace: string; status?: string; runtime?: string; size?: string; kind?: string }) => {
      const { workspace, status, runtime, size, kind } = input; // only the filters: callers pass their whole options
      const filters = { status, runtime, size, kind };
      const items: unknown[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.request<{ items: unknown[]; nextCursor: string | null }>(
          'GET',
          `/v1/workspaces/${seg(workspace)}/snapshots`,
          undefined,
          {
            ...filters,
            limit: 200,
            cursor,
          },
        );
        items.push(...page.items);
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      return items;
    },
    /** The first `limit` (no limit: every one) and how many match in all, as SnapflowClient's `page` answers. */
    page: async (input: { workspace: string; status?: string; runtime?: string; size?: string; kind?: string; limit?: number }) => {
      const all = await this.snapshots.list(input);
      return { snapshots: input.limit === undefined ? all : all.slice(0, input.limit), total: all.length };
    },
    delete: (input: { workspace: string; name: string }) =>
      this.request<{ snapshotId: string; status: 'deleted' }>(
        'DELETE',
        `/v1/workspaces/${seg(input.workspace)}/snapshots/${seg(input.name)}`,
      ),
    prune: (input: { workspace: string; unusedForDays: number; yes?: boolean }) =>
      this.request('POST', `/v1/workspaces/${seg(input.workspace)}/snapshots/prune`, {
        unusedFor: `${input.unusedForDays}d`,
        dryRun: !input.yes,
      }),
  };

  readonly workspaces = {
    list: async () => (await this.request<{ items: unknown[] }>('GET', '/v1/workspaces')).items,
    create: (input: { id: string; plan?: string; admin: string }) => this.request('POST', '/v1/workspaces', input),
    members: async (workspace: string) =>
      (await this.request<{ items: unknown[] }>('GET', `/v1/workspaces/${seg(workspace)}/members`)).items,
    addMember: (input: { workspace: string; user: string; role?: string }) =>
      this.request('POST', `/v1/workspaces/${seg(input.workspace)}/members`, { user: input.user, role: input.role }),
    removeMember: async (input: { workspace: string; user: string }) => {
      await this.request('DELETE', `/v1/workspaces/${seg(input.workspace)}/members/${seg(input.user)}`);
    },
  };

  readonly tokens = {
    create: (input: { user: string; workspace?: string; role?: string; expires?: string }) =>
      this.request<{ token: string; record: Record<string, unknown> }>('POST', '/v1/tokens', input),
    list: async () => (await this.request<{ items: unknown[] }>('GET', '/v1/tokens')).items,
    revoke: (id: string) => this.request('DELETE', `/v1/tokens/${seg(id)}`),
    me: () => this.me(),
  };

  githubStatus(input: { workspace: string }): Promise<unknown> {
    return this.request('GET', `/v1/workspaces/${seg(input.workspace)}/github`);
  }

  validateGithub(input: { workspace: string; installationId?: number }): Promise<unknown> {
    const path = `/v1/workspaces/${seg(input.workspace)}/github`;
    return input.installationId === undefined
      ? this.request('POST', `${path}/validate`)
      : this.request('POST', `${path}/connect`, { installationId: input.installationId });
  }

  readonly sandboxes = {
    list: async (workspace: string) =>
      (await this.request<{ items: unknown[] }>('GET', `/v1/workspaces/${seg(workspace)}/sandboxes`)).items,
    create: (input: Record<string, unknown> & { workspace: string }) => {
      const { workspace, ...body } = input;
      return this.request<{ sandboxId: string; workflowId: string; status: unknown }>(
        'POST',
        `/v1/workspaces/${seg(workspace)}/sandboxes`,
        body,
      );
    },
    status: (id: string) => this.request('GET', `/v1/sandboxes/${seg(id)}`),
    explain: (id: string) => this.request('GET', `/v1/sandboxes/${seg(id)}/explain`),
    promote: (id: string, input: { name: string; setDefault?: boolean }) => this.request('POST', `/v1/sandboxes/${seg(id)}/promote`, input),
    /** A new sandbox from this one's latest session, or its live state saved on the spot (`sandbox fork`). */
    fork: (input: { sandbox: string; name?: string }) =>
      this.request<{ sandboxId: string; workflowId: string; forkedFrom: unknown; status: unknown }>(
        'POST',
        `/v1/sandboxes/${seg(input.sandbox)}/fork`,
        input.name === undefined ? {} : { name: input.name },
      ),
    resume: (id: string) => this.request('POST', `/v1/sandboxes/${seg(id)}/resume`),
    destroy: (id: string) => this.request('DELETE', `/v1/sandboxes/${seg(id)}`),
    /** The job's output as it comes (bytes decoded from the stream's base64), then its result. */
    runJob: async (
      id: string,
      job: { command: string[]; env?: Record<string, string>; workdir?: string; timeout?: string | number },
      options: { onOutput?: (chunk: OutputChunk) => void } = {},
    ): Promise<Record<string, unknown> & { exitCode: number; stdout: string; stderr: string }> => {
      const res = await this.fetch('POST', `/v1/sandboxes/${seg(id)}/jobs`, job, undefined, true);
      if (!res.ok || !res.body) throw problemError(res.status, await res.json().catch(() => undefined));
      let result: (Record<string, unknown> & { exitCode: number; stdout: string; stderr: string }) | undefined;
      let failure: SnapflowError | undefined;
      for await (const event of serverSentEvents(res.body)) {
        if (event.event === 'stdout' || event.event === 'stderr')
          options.onOutput?.({ stream: event.event, data: Buffer.from(event.data, 'base64').toString('utf8') });
        else if (event.event === 'result') result = JSON.parse(event.data) as typeof result;
        else if (event.event === 'error') failure = problemError(500, JSON.parse(event.data));
      }
      if (failure) throw failure;
      if (!result)
        throw new SnapflowError({
          code: 'INTERNAL',
          message: 'the job stream ended without a result',
          hint: 'see `snapflow sandbox status`',
        });
      return result;
    },
  };

  readonly golden = {
    getConfig: (workspace: string) => this.request('GET', `/v1/workspaces/${seg(workspace)}/golden/config`),
    setConfig: (input: Record<string, unknown> & { workspace: string }) => {
      const { workspace, ...body } = input;
      return this.request('PUT', `/v1/workspaces/${seg(workspace)}/golden/config`, body);
    },
    buildNow: (input: { workspace: string }) =>
      this.request<{ workflowId: string; buildId: string; joined: boolean }>(
        'POST',
        `/v1/workspaces/${seg(input.workspace)}/golden/builds`,
      ),
    recentBuilds: async (workspace: string, limit = 10) =>
      (await this.request<{ items: unknown[] }>('GET', `/v1/workspaces/${seg(workspace)}/golden/builds`, undefined, { limit })).items,
    scheduleState: (workspace: string) => this.request('GET', `/v1/workspaces/${seg(workspace)}/golden/schedule`),
    defaults: async (workspace: string) =>
      (await this.request<{ items: unknown[] }>('GET', `/v1/workspaces/${seg(workspace)}/golden/defaults`)).items,
    setDefault: (input: { workspace: string; name: string; reason?: string; expectedVersion?: number }) => {
      const { workspace, ...body } = input;
      return this.request('POST', `/v1/workspaces/${seg(workspace)}/golden/defaults`, body);
    },
    rollback: (input: { workspace: string; size: string; runtime: string; base?: string }) => {
      const { workspace, ...body } = input;
      return this.request('POST', `/v1/workspaces/${seg(workspace)}/golden/rollback`, body);
    },
  };

  async close(): Promise<void> {}
}

function problemError(status: number, body: unknown): SnapflowError {
  const p = (body ?? {}) as { code?: unknown; message?: unknown; field?: unknown; hint?: unknown };
  return new SnapflowError({
    code: isErrorCode(p.code) ? p.code : 'INTERNAL',
    message: typeof p.message === 'string' ? p.message : `the API answered ${status}`,
    field: typeof p.field === 'string' ? p.field : undefined,
    hint: typeof p.hint === 'string' ? p.hint : undefined,
  });
}

/** Parses a text/event-stream body into events (`event:` and `data:` lines, a blank line ends each). */
async function* serverSentEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string }> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const piece of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(piece, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      yield { event, data: data.join('\n') };
    }
  }
}
