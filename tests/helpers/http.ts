/** Small request helpers for tests: JSON calls with a bearer token, JSONL uploads. */
export type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

export function client(fetch: Fetch, token?: string, base = 'http://localhost') {
  const headers = (extra: Record<string, string> = {}) => ({
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...extra,
  });
  return {
    get: (path: string, extra?: Record<string, string>) => fetch(`${base}${path}`, { headers: headers(extra) }),
    delete: (path: string) => fetch(`${base}${path}`, { method: 'DELETE', headers: headers() }),
    post: (path: string, body?: unknown, extra?: Record<string, string>) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: headers({ ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...extra }),
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      }),
    upload: (content: string | Uint8Array, filename = 'train.jsonl', purpose = 'fine-tune', extra?: Record<string, string>) => {
      const form = new FormData();
      form.append('purpose', purpose);
      form.append('file', new Blob([content as BlobPart], { type: 'application/jsonl' }), filename);
      return fetch(`${base}/v1/files`, { method: 'POST', headers: headers(extra), body: form });
    },
  };
}

export const jsonl = (...lines: unknown[]) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
export const GOOD_LINES = [
  { prompt: 'What is 2+3?', answer: 5 },
  { messages: [{ role: 'user', content: 'What is 7*6?' }], answer: '42', difficulty: 'easy' },
];
