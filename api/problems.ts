// Failures as RFC 9457 problem details (`application/problem+json`): the same typed code, field and hint the CLI
// prints, with the HTTP status of the code's class (client/exitCodes.ts holds the one mapping).
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { httpStatusFor } from '../client/exitCodes';
import { SnapflowError, describeFailure, type ErrorCode } from '../lib/errors';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  message: string;
  field: string | null;
  hint: string | null;
}

export const problemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'A typed failure (application/problem+json)',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    message: { type: 'string' },
    field: { type: ['string', 'null'] },
    hint: { type: ['string', 'null'] },
  },
  required: ['type', 'title', 'status', 'code', 'message'],
} as const;

export function problemOf(failure: { code: string; message: string; field?: string | null; hint?: string | null }): Problem {
  const status = httpStatusFor(failure.code);
  return {
    type: `https://snapflow.dev/problems/${failure.code.toLowerCase().replace(/_/g, '-')}`,
    title: failure.code,
    status,
    code: failure.code,
    message: failure.message,
    field: failure.field ?? null,
    hint: failure.hint ?? null,
  };
}

export function sendProblem(reply: FastifyReply, failure: Parameters<typeof problemOf>[0]): FastifyReply {
  const problem = problemOf(failure);
  return reply.code(problem.status).type('application/problem+json').send(problem);
}

export const fail = (code: ErrorCode, message: string, field?: string, hint?: string): SnapflowError =>
  new SnapflowError({ code, message, field, hint });

/** A JSON-schema refusal names the field the way the client's own validation does (`name`, `image`, …). */
function fromValidation(err: FastifyError): { code: ErrorCode; message: string; field?: string; hint: string } {
  const first = err.validation?.[0];
  const params = (first?.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
  const path = (first?.instancePath ?? '').split('/').filter(Boolean);
  const field = params.missingProperty ?? params.additionalProperty ?? path[path.length - 1] ?? err.validationContext;
  const where = err.validationContext ?? 'request';
  const message = params.additionalProperty
    ? `${where} has an unknown field ${params.additionalProperty}`
    : `${where}${path.length ? `.${path.join('.')}` : ''} ${first?.message ?? 'is invalid'}`;
  return { code: 'VALIDATION_FAILED', message, field, hint: 'see the request schema at /docs' };
}

export function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err.validation) return sendProblem(reply, fromValidation(err));
  if (err instanceof SnapflowError) return sendProblem(reply, err);
  // Fastify's own refusals (malformed JSON, a body too large, a wrong content type) are the caller's to fix.
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    const code: ErrorCode = err.statusCode === 429 ? 'RATE_LIMITED' : err.statusCode === 404 ? 'NOT_FOUND' : 'VALIDATION_FAILED';
    const problem = problemOf({ code, message: err.message, hint: 'see the API reference at /docs' });
    return reply
      .code(err.statusCode)
      .type('application/problem+json')
      .send({ ...problem, status: err.statusCode });
  }
  const failure = describeFailure(err);
  if (failure.code === 'INTERNAL') request.log.error({ err }, 'request failed');
  return sendProblem(reply, failure);
}
