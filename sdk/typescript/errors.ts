/**
 * The API's error envelope `{"error": {message, type, param, code}}` as a thrown error, with the HTTP status and the
 * response's `x-request-id` (quote it when reporting a problem).
 */
export interface ErrorEnvelope {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export class SoftReasonError extends Error {
  override readonly name = 'SoftReasonError';
  constructor(
    readonly status: number,
    readonly error: ErrorEnvelope,
    readonly requestId: string | null,
  ) {
    super(`${error.message} (HTTP ${status}${error.code ? `, ${error.code}` : ''}${requestId ? `, request ${requestId}` : ''})`);
  }
  get type() {
    return this.error.type;
  }
  get code() {
    return this.error.code;
  }
  get param() {
    return this.error.param;
  }
}

function isEnvelope(body: unknown): body is { error: ErrorEnvelope } {
  const e = (body as { error?: unknown } | null)?.error as Partial<ErrorEnvelope> | undefined;
  return typeof e === 'object' && e !== null && typeof e.message === 'string';
}

/** An error from a parsed body (openapi-fetch's `error`, or an SSE `{"error"}` payload) and the response. */
export function toSoftReasonError(status: number, body: unknown, requestId: string | null): SoftReasonError {
  if (isEnvelope(body)) {
    const e = body.error;
    return new SoftReasonError(status, { message: e.message, type: e.type ?? 'api_error', param: e.param ?? null, code: e.code ?? null }, requestId);
  }
  // Not the API's envelope (a proxy's HTML page, an empty body): keep a short excerpt.
  const text = typeof body === 'string' ? body : body === undefined ? '' : JSON.stringify(body);
  return new SoftReasonError(status, { message: `HTTP ${status}: ${text.slice(0, 300) || 'no body'}`, type: 'http_error', param: null, code: null }, requestId);
}

export async function errorFromResponse(res: Response): Promise<SoftReasonError> {
  const text = await res.text().catch(() => '');
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return toSoftReasonError(res.status, body, res.headers.get('x-request-id'));
}
