// OpenTelemetry traces across client → workflow → activities, through Temporal's OpenTelemetry interceptors: the
// client's span travels to the workflow in its headers, the workflow's to each activity, so one command is one trace.
// Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then no tracer, no
// interceptor and no exporter exist at all. When on, spans are batched and sent as OTLP/HTTP (JSON) to
// `<endpoint>/v1/traces` (or the traces endpoint as written); OTEL_EXPORTER_OTLP_HEADERS and OTEL_SERVICE_NAME are
// honoured as the OpenTelemetry conventions say.
import { SpanStatusCode, context, trace, type Span, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import type { WorkflowClientInterceptor } from '@temporalio/client';

export interface Tracing {
  tracer: Tracer;
  resource: Resource;
  processor: SpanProcessor;
  /** Sends what is still batched (call before the process exits). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** The OTLP/HTTP traces URL the environment names, or undefined (tracing off). */
export function tracesEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const all = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  return all ? `${all.replace(/\/+$/, '')}/v1/traces` : undefined;
}

let current: Tracing | undefined;

/**
 * The process's tracing, started on first use when the environment turns it on (one provider per process: the
 * client and a worker in the same process share it). `service` names this process in the traces.
 */
export function startTracing(opts: { service: string; version: string; env?: NodeJS.ProcessEnv }): Tracing | undefined {
  const env = opts.env ?? process.env;
  const url = tracesEndpoint(env);
  if (!url) return undefined;
  if (current) return current;
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME?.trim() || opts.service, 'service.version': opts.version });
  const processor = new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000 });
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor] });
  // The interceptors find the active span and inject it into headers through the global API.
  provider.register({ contextManager: new AsyncLocalStorageContextManager(), propagator: new W3CTraceContextPropagator() });
  current = {
    tracer: provider.getTracer('snapflow', opts.version),
    resource,
    processor,
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      await provider.shutdown();
      if (current?.processor === processor) current = undefined;
    },
  };
  return current;
}

/** The client's workflow interceptor (start, signal, update, query spans), or none when tracing is off. */
export function tracingClientInterceptors(tracing: Tracing | undefined): WorkflowClientInterceptor[] {
  return tracing ? [new OpenTelemetryWorkflowClientInterceptor({ tracer: tracing.tracer })] : [];
}

/** Runs `work` inside a span (the root of one command's trace); without tracing, just runs it. */
export async function inSpan<T>(tracing: Tracing | undefined, name: string, work: (span?: Span) => Promise<T>): Promise<T> {
  if (!tracing) return work();
  return tracing.tracer.startActiveSpan(name, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The trace id of the active span, if any (logged beside a command's result so it can be found). */
export function activeTraceId(): string | undefined {
  return trace.getSpan(context.active())?.spanContext().traceId;
}
