// Schema pieces the routes share. Slugs and names are checked again by the client's own validation (the same rules
// as the CLI), so these only keep obvious garbage out early and document the shapes.
export const workspaceParam = {
  type: 'object',
  properties: { workspace: { type: 'string', minLength: 1, maxLength: 63 } },
  required: ['workspace'],
  additionalProperties: false,
} as const;

export const sandboxParam = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['id'],
  additionalProperties: false,
} as const;

/** Any JSON object: for results whose shape the client's types define (documented by example, not re-specified). */
export const anyObject = { type: 'object', additionalProperties: true } as const;

/** The typed failures every authenticated route may answer. */
export const problems = {
  400: { $ref: 'Problem#' },
  401: { $ref: 'Problem#' },
  403: { $ref: 'Problem#' },
  404: { $ref: 'Problem#' },
  409: { $ref: 'Problem#' },
  429: { $ref: 'Problem#' },
  503: { $ref: 'Problem#' },
} as const;

/** The success shape; failures are documented once (the Problem schema) and sent by the error handler as they are. */
export const ok = (schema: object = anyObject, status = 200): Record<number, unknown> => ({ [status]: schema });
