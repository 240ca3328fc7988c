// The console's one door to the API: the token from sessionStorage as a Bearer header, JSON in and out, and every
// refusal turned into the API's problem (code, message, field, hint) so a page can show it as the CLI would.

const TOKEN_KEY = 'snapflow.token';

export interface Problem {
  status: number;
  code: string;
  message: string;
  field?: string;
  hint?: string;
}

export class ApiError extends Error implements Problem {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export const token = {
  get: (): string | null => sessionStorage.getItem(TOKEN_KEY),
  set: (value: string): void => sessionStorage.setItem(TOKEN_KEY, value),
  clear: (): void => sessionStorage.removeItem(TOKEN_KEY),
};

/** Called when the API says the token is no good (401): the app goes back to sign-in. */
let onUnauthorized: () => void = () => undefined;
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

function headers(json: boolean): Record<string, string> {
  const h: Record<string, string> = { accept: 'application/json, application/problem+json' };
  const t = token.get();
  if (t) h.authorization = `Bearer ${t}`;
  if (json) h['content-type'] = 'application/json';
  return h;
}

async function problemOf(res: Response): Promise<ApiError> {
  const body = (await res.json().catch(() => ({}))) as Partial<Problem> & { title?: string; detail?: string };
  const message = body.message ?? body.detail ?? body.title ?? `${res.status} ${res.statusText}`;
  return new ApiError(res.status, body.code ?? `HTTP_${res.status}`, message, body.field ?? undefined, body.hint ?? undefined);
}

/** `path` is below the API root, e.g. `/v1/me`; `body` is sent as JSON. Resolves to the parsed JSON (or null: 204). */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method,
    headers: headers(body !== undefined),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    const problem = await problemOf(res);
    onUnauthorized();
    throw problem;
  }
  if (!res.ok) throw await problemOf(res);
  if (res.status === 204) return null as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}): Promise<T> => call<T>('POST', path, body);
export const put = <T>(path: string, body: unknown): Promise<T> => call<T>('PUT', path, body);
export const del = <T>(path: string): Promise<T> => call<T>('DELETE', path);

/** `/v1/workspaces/acme/snapshots` from its parts, each part escaped. */
export function path(...parts: Array<string | number>): string {
  return '/v1/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}

export interface StreamEvent {
  event: string;
  data: string;
}

/**
 * POSTs and reads the answer as server-sent events (a job's output): EventSource only does GET, so the stream is
 * read from fetch and split on blank lines. Every event is handed over as it arrives.
 */
export async function postStream(url: string, body: unknown, onEvent: (e: StreamEvent) => void, signal?: AbortSignal): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { ...headers(true), accept: 'text/event-stream' },
    body: JSON.stringify(body),
    signal,
  });
  if (res.status === 401) onUnauthorized();
  if (!res.ok) throw await problemOf(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, '\n');
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0 || event !== 'message') onEvent({ event, data: data.join('\n') });
    }
  }
}
