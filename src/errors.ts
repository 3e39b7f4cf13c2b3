/**
 * The error envelope `{error: {message, type, param, code}}` (OpenAI's shape) and the one place that produces it:
 * `ApiError` thrown anywhere, zod validation failures (message and `param` name the field), malformed JSON,
 * oversized bodies, unknown routes, and unexpected exceptions (500, logged, no internals leaked).
 */
import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from '@hono/zod-openapi';
import type { ZodError } from 'zod';

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable_error';

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly opts: { type?: ErrorType; code?: string; param?: string | null; retryAfter?: number } = {},
  ) {
    super(message);
  }
}

const defaultType = (status: number): ErrorType =>
  status === 401
    ? 'authentication_error'
    : status === 403
      ? 'permission_error'
      : status === 404
        ? 'not_found_error'
        : status === 409
          ? 'conflict_error'
          : status === 429
            ? 'rate_limit_error'
            : status === 503
              ? 'service_unavailable_error'
              : status >= 500
                ? 'server_error'
                : 'invalid_request_error';

export const badRequest = (message: string, param: string | null = null, code = 'invalid_value') =>
  new ApiError(400, message, { code, param });
export const notFound = (what: string, id: string, param: string | null = null) =>
  new ApiError(404, `No ${what} found with id '${id}'.`, { code: `${what.replace(/ /g, '_')}_not_found`, param });
export const conflict = (message: string, code: string) => new ApiError(409, message, { code });

export function errorBody(status: number, message: string, opts: ApiError['opts'] = {}) {
  return {
    error: { message, type: opts.type ?? defaultType(status), param: opts.param ?? null, code: opts.code ?? null },
  };
}

export function errorResponse(c: Context, status: ContentfulStatusCode, message: string, opts: ApiError['opts'] = {}) {
  if (opts.retryAfter !== undefined) c.header('retry-after', String(opts.retryAfter));
  return c.json(errorBody(status, message, opts), status);
}

/** The zod issue path as a field name: `method.hyperparameters.top_p`, `messages[1].role`. */
export function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

type Issue = ZodError['issues'][number];

/** zod's message without its "Invalid input: " lead, in the API's words ("expected integer, received string"). */
function issueText(issue: Issue): string {
  if (issue.code === 'invalid_type') {
    // zod writes "received undefined" exactly when the field is absent (the input itself is not kept on the issue).
    if (/received undefined$/.test(issue.message)) return 'is required';
    return issue.message.replace(/^Invalid input: /, '').replace(/^expected int\b/, 'expected integer');
  }
  return issue.message.replace(/^Invalid input: /, '');
}

/**
 * The issue to report for a union that matched no member, with its path: the member that got furthest. A member
 * that is only a literal ("auto") is dropped in favour of the others and named as the alternative:
 * `expected integer, received string (or "auto")`.
 */
function unionIssue(issue: Issue): { issue: Issue; alternatives: unknown[] } {
  const branches = issue.code === 'invalid_union' ? ((issue as { errors?: Issue[][] }).errors ?? []) : [];
  const literal = (b: Issue[]) => b.length === 1 && b[0].code === 'invalid_value' && b[0].path.length === 0;
  const rest = branches.filter((b) => !literal(b) && b.length > 0);
  if (rest.length === 0) return { issue, alternatives: [] };
  const deepest = rest.reduce((a, b) => (b[0].path.length > a[0].path.length ? b : a));
  const inner = { ...deepest[0], path: [...issue.path, ...deepest[0].path] } as Issue;
  const alternatives = branches.filter(literal).flatMap((b) => (b[0] as { values: unknown[] }).values);
  const nested = unionIssue(inner);
  return { issue: nested.issue, alternatives: [...alternatives, ...nested.alternatives] };
}

/**
 * A zod failure as the error's message and `param`: the first issue, named by its field path; an unknown key is
 * named itself (`param` = `method.hyperparameters.warp_speed`). Only a problem with the whole body (not an object)
 * has no field, so `param` is null then.
 */
export function describeZodError(error: ZodError): { message: string; param: string | null } {
  const first = error.issues[0];
  if (!first) return { message: 'Invalid request.', param: null };
  if (first.code === 'unrecognized_keys') {
    const param = fieldName([...first.path, first.keys[0]]);
    const more = first.keys.length > 1 ? ` (and ${first.keys.slice(1).map((k) => `"${k}"`).join(', ')})` : '';
    return { message: `${param}: is not a known field${more}`, param };
  }
  const { issue, alternatives } = unionIssue(first);
  const param = fieldName(issue.path);
  const or = alternatives.length && !/is required$/.test(issueText(issue)) ? ` (or ${alternatives.map((v) => JSON.stringify(v)).join(', ')})` : '';
  const msg = issueText(issue) + or;
  return { message: param ? `${param}: ${msg}` : msg, param: param || null };
}

/** defaultHook of every OpenAPIHono router: a failed zod validation becomes a 400 naming the field. */
export function validationHook(
  result: { success: true; data: unknown } | { success: false; error: ZodError; target?: string },
  c: Context,
) {
  if (!result.success) {
    const { message, param } = describeZodError(result.error);
    return errorResponse(c, 400, message, { param, code: 'invalid_value' });
  }
}

export const onError: ErrorHandler = (err, c) => {
  if (err instanceof ApiError) return errorResponse(c, err.status, err.message, err.opts);
  if (err instanceof HTTPException) {
    const status = err.status as ContentfulStatusCode;
    if (status === 413) return errorResponse(c, 413, 'Request body too large.', { code: 'body_too_large' });
    const message = err.message || (status === 400 ? 'Bad request.' : 'Request failed.');
    const code = status === 400 && /JSON/i.test(message) ? 'invalid_json' : status === 415 ? 'unsupported_media_type' : 'http_error';
    return errorResponse(c, status, message, { code });
  }
  console.error(`[${c.get('requestId' as never) ?? '-'}] unhandled error`, err);
  return errorResponse(c, 500, 'Internal server error.', { code: 'internal_error' });
};

export const onNotFound: NotFoundHandler = (c) =>
  errorResponse(c, 404, `No route for ${c.req.method} ${new URL(c.req.url).pathname}.`, { code: 'route_not_found' });

/** The envelope as a zod schema, for the OpenAPI document. */
export const ErrorSchema = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string(),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  })
  .openapi('Error');

const errorContent = { 'application/json': { schema: ErrorSchema } };
/**
 * Error responses for route definitions: `responses: { 200: ..., ...errorResponses(401, 404) }`.
 * 400 (validation, a malformed Idempotency-Key) and 413 (body limit) can answer any route and are always included.
 */
export function errorResponses<S extends number>(...given: S[]) {
  const statuses = [...new Set([400, 413, ...given])].sort() as (S | 400 | 413)[];
  const descriptions: Record<number, string> = {
    400: 'Invalid request (the message names the field)',
    401: 'Missing or invalid API key',
    403: 'Not allowed with this credential',
    404: 'Not found (or owned by another tenant)',
    409: 'Conflict with the current state (illegal status transition, reused idempotency key)',
    413: 'Request body larger than the documented limit',
    415: 'Unsupported Content-Type',
    429: 'Too many requests (see retry-after)',
    503: 'Temporarily unavailable (see retry-after)',
  };
  return Object.fromEntries(
    statuses.map((s) => [s, { description: descriptions[s] ?? 'Error', content: errorContent }]),
  ) as { [K in S | 400 | 413]: { description: string; content: typeof errorContent } };
}
