// Worker logs: one JSON object per line (time, level, message, then workflowId, runId, activity and host where
// known), at SNAPFLOW_LOG_LEVEL and above. The Temporal Runtime's logger is this one, so the SDK's own lines and
// those of activities and workflows (which carry their run's ids) land in the same stream. Secrets never do:
// every line is redacted of the configured secret values and of token and private key shapes before it is written.
import type { LogLevel, LogMetadata, Logger } from '@temporalio/common';
import { Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import type { Config } from '../lib/config';
import { durationBuckets } from './metrics';

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
  for (const [key, value] of Object.entries(rest)) {
    out[key] = value instanceof Error ? { name: value.name, message: value.message } : value;
  }
  return out;
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

/**
 * Installs the process's Temporal Runtime with this logger (the SDK's native core forwards its warnings into
 * it too) and, when `metricsAddress` is set, the SDK's Prometheus exporter there. Call once, before any worker.
 */
let installed: JsonLogger | undefined;

/** The logger installRuntime made, if it ran in this process. */
export function workerLogger(): JsonLogger | undefined {
  return installed;
}

export function installRuntime(config: Config, fields: Record<string, unknown>): JsonLogger {
  const logger = (installed = new JsonLogger({ level: config.logLevel, fields, secrets: configSecrets(config) }));
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: config.logLevel === 'trace' ? 'DEBUG' : 'WARN' }) },
      ...(config.metricsAddress
        ? { metrics: { prometheus: { bindAddress: config.metricsAddress, histogramBucketOverrides: durationBuckets } } }
        : {}),
    },
  });
  return logger;
}
