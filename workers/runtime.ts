// What a worker process sets up once, before any worker: the Temporal Runtime (its logger is ours, its Prometheus
// exporter serves SNAPFLOW_METRICS_ADDRESS with unit-normalised names) and, when OTEL_EXPORTER_OTLP_ENDPOINT is
// set, tracing (the OpenTelemetry activity and workflow interceptors and the sink that exports workflow spans).
import { OpenTelemetryActivityInboundInterceptor, makeWorkflowExporter } from '@temporalio/interceptors-opentelemetry';
import { Runtime, makeTelemetryFilterString, type ActivityInterceptorsFactory, type WorkerOptions } from '@temporalio/worker';
import type { Config } from '../lib/config';
import { startTracing, type Tracing } from '../lib/tracing';
import { JsonLogger, configSecrets, setWorkerLogger } from './log';
import { histogramBuckets } from './metrics';
import { packageVersion as version } from '../lib/version';

/** Prometheus exporter options: seconds for durations, units and `_total` in names, as Prometheus conventions ask. */
export function prometheusOptions(bindAddress: string) {
  return {
    bindAddress,
    useSecondsForDurations: true,
    unitSuffix: true,
    countersTotalSuffix: true,
    histogramBucketOverrides: histogramBuckets,
  };
}

/**
 * Installs the process's Temporal Runtime with this logger (the SDK's native core forwards its warnings into it
 * too) and, when `metricsAddress` is set, the SDK's Prometheus exporter there. Call once, before any worker.
 * `worker` names the process: `service` on every log line is `snapflow-<worker>`, as is the traces' service name.
 */
export function installRuntime(config: Config, worker: 'control' | 'host', fields: Record<string, unknown> = {}): JsonLogger {
  const service = `snapflow-${worker}`;
  const logger = new JsonLogger({
    level: config.logLevel,
    fields: { service, version, worker, ...fields },
    secrets: configSecrets(config),
  });
  setWorkerLogger(logger);
  Runtime.install({
    logger,
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: config.logLevel === 'trace' ? 'DEBUG' : 'WARN' }) },
      ...(config.metricsAddress ? { metrics: { prometheus: prometheusOptions(config.metricsAddress) } } : {}),
    },
  });
  return logger;
}

/** The process's tracing when the environment turns it on (OTEL_EXPORTER_OTLP_ENDPOINT), else undefined. */
export function workerTracing(worker: 'control' | 'host', env: NodeJS.ProcessEnv = process.env): Tracing | undefined {
  return startTracing({ service: `snapflow-${worker}`, version, env });
}

/** Activity spans, children of the span of the workflow that scheduled them. */
export function tracingActivityInterceptors(tracing: Tracing | undefined): ActivityInterceptorsFactory[] {
  if (!tracing) return [];
  return [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer: tracing.tracer }) })];
}

/**
 * Workflow spans: the interceptor module runs inside the workflow sandbox, so it must be bundled with the workflows
 * (the worker bundles at start instead of loading the prebuilt bundle, which has no interceptor: tracing off costs
 * nothing), and its spans leave the sandbox through the `exporter` sink. Adding or removing it changes no command,
 * so traced and untraced workers replay each other's histories.
 */
export function tracingWorkflowOptions(tracing: Tracing | undefined): Pick<WorkerOptions, 'sinks'> & { workflowModules: string[] } {
  if (!tracing) return { workflowModules: [] };
  return {
    workflowModules: [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')],
    sinks: { exporter: makeWorkflowExporter(tracing.processor, tracing.resource) },
  };
}
