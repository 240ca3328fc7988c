// Worker logs: one JSON object per line (time, level, message, then service, version, workflowId, runId, activity
// and host where known), at SNAPFLOW_LOG_LEVEL and above. The Temporal Runtime's logger is this one (workers/runtime.ts),
// so the SDK's own lines and those of activities and workflows (which carry their run's ids) land in the same
// stream. An error keeps its name, message, code and stack. Secrets never land there: every line is redacted of the
// configured secret values and of token and private key shapes before it is written.
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import type { Config } from '../lib/config';

const RANK: Record<LogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };
const REDACTED = '[redacted]';

/** Token and key shapes redacted whatever their value: GitHub tokens and PEM private keys (also JSON-escaped). */
const SECRET_SHAPES = [
  /\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})/g,
  /-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----/g,
];

/** The secret values a worker knows from its configuration. */
export function configSecrets(config: Config): string[] {
  const keys = config.payloadKey ? [config.payloadKey.key, ...config.payloadKey.oldKeys.map((k) => k.key)] : [];
  return [
    config.storage?.password,
    config.githubApp?.privateKey,
    ...keys.flatMap((key) => [key.toString('base64'), key.toString('hex')]),
    new URL(config.databaseUrl).password || undefined,
  ].filter((s): s is string => typeof s === 'string' && s.length >= 6);
}

export interface JsonLoggerOptions {
  level?: string;
  /** Fields on every line, e.g. { worker: 'host', host: 'host-a' }. */
  fields?: Record<string, unknown>;
  secrets?: readonly string[];
  write?: (line: string) => void;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Temporal's log metadata, renamed to the fields every line shares; the rest is kept as it is. */
function contextFields(meta: LogMetadata = {}): Record<string, unknown> {
  const { workflowId, runId, workflowRunId, activityType, ...rest } = meta as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  if (workflowId !== undefined) out.workflowId = workflowId;
  if (runId !== undefined || workflowRunId !== undefined) out.runId = runId ?? workflowRunId;
  if (activityType !== undefined) out.activity = activityType;
  for (const [key, value] of Object.entries(rest)) out[key] = value instanceof Error ? errorFields(value) : value;
  return out;
}

/** An error as a log field: what an on-call engineer needs to find the line of code, causes included (bounded). */
export function errorFields(err: Error, depth = 0): Record<string, unknown> {
  const code = (err as { code?: unknown; type?: unknown }).code ?? (err as { type?: unknown }).type;
  return {
    name: err.name,
    message: err.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(err.stack ? { stack: err.stack } : {}),
    ...(err.cause instanceof Error && depth < 3 ? { cause: errorFields(err.cause, depth + 1) } : {}),
  };
}

export class JsonLogger implements Logger {
  private readonly threshold: number;
  private readonly redactions: RegExp[];
  private readonly write: (line: string) => void;

  constructor(private readonly opts: JsonLoggerOptions = {}) {
    this.threshold = RANK[(opts.level ?? 'info').toUpperCase() as LogLevel] ?? RANK.INFO;
    // Each secret as written and as it appears inside a JSON string (quotes, backslashes, newlines escaped).
    const forms = (opts.secrets ?? []).flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]);
    this.redactions = [
      ...[...new Set(forms)].sort((a, b) => b.length - a.length).map((s) => new RegExp(escapeRegExp(s), 'g')),
      ...SECRET_SHAPES,
    ];
    this.write = opts.write ?? ((line) => void process.stdout.write(line));
  }

  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.threshold;
  }

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    if (!this.enabled(level)) return;
    const entry = { time: new Date().toISOString(), level: level.toLowerCase(), message, ...this.opts.fields, ...contextFields(meta) };
    let line = JSON.stringify(entry);
    for (const pattern of this.redactions) line = line.replace(pattern, REDACTED);
    this.write(`${line}\n`);
  }

  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

let installed: JsonLogger | undefined;

/** The logger the worker process installed its Runtime with (workers/runtime.ts), if any. */
export function workerLogger(): JsonLogger | undefined {
  return installed;
}

export function setWorkerLogger(logger: JsonLogger): void {
  installed = logger;
}
