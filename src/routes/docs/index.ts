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

docsRouter.get('/docs', Scalar({ url: '/openapi.json', cdn: '/docs/scalar.js', withDefaultFonts: false, pageTitle: 'Soft-thinking reasoning API' }));

docsRouter.get('/docs/scalar.js', async (c) => {
  const assets = c.get('deps').docsAssets;
  if (!assets) throw new ApiError(404, 'This deployment does not serve the API reference bundle.', { code: 'docs_assets_missing' });
  const body = await assets.scalarBundle();
  return new Response(body, {
    headers: { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'public, max-age=86400' },
  });
});
