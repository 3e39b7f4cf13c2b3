/**
 * `/openapi.json` (OpenAPI 3.1, generated from the zod route definitions) and `/docs` (Scalar API reference).
 * The page loads its script from `/docs/scalar.js`, served from the vendored bundle through `deps.docsAssets`,
 * with Scalar's web fonts off, so it works without network access.
 */
import { Scalar } from '@scalar/hono-api-reference';
import { Hono } from 'hono';
import { ApiError } from '../../errors';
import type { AppEnv } from '../../router';

export const docsRouter = new Hono<AppEnv>();

/**
 * The reference page's Content-Security-Policy: scripts only from this origin plus the page's own inline scripts,
 * allowed by their SHA-256 (computed from the page as served, so an upgrade of the Scalar integration that changes
 * them cannot silently break the page or widen the policy); inline styles, which Scalar injects at runtime; data:
 * images; requests only to this origin (the OpenAPI document, and the "try it" client against this API).
 */
async function docsCsp(html: string): Promise<string> {
  const inline = [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  const hashes = await Promise.all(
    inline.map(async (script) => {
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(script)));
      return `'sha256-${btoa(String.fromCharCode(...digest))}'`;
    }),
  );
  return [
    "default-src 'none'",
    `script-src 'self' ${hashes.join(' ')}`.trim(),
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "object-src 'none'",
  ].join('; ');
}

docsRouter.use('/docs', async (c, next) => {
  await next();
  if (c.res.status !== 200) return;
  c.header('content-security-policy', await docsCsp(await c.res.clone().text()));
  c.header('x-content-type-options', 'nosniff');
});

docsRouter.get('/docs', Scalar({ url: '/openapi.json', cdn: '/docs/scalar.js', withDefaultFonts: false, pageTitle: 'Soft-thinking reasoning API' }));

docsRouter.get('/docs/scalar.js', async (c) => {
  const assets = c.get('deps').docsAssets;
  if (!assets) throw new ApiError(404, 'This deployment does not serve the API reference bundle.', { code: 'docs_assets_missing' });
  const body = await assets.scalarBundle();
  return new Response(body, {
    headers: { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=86400' },
  });
});
