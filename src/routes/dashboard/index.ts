/**
 * `/dashboard`: a small web page over the public API (models, jobs with their reward curve and checkpoints, a
 * reasoning playground). Static HTML + one vanilla JS module, no build step, nothing loaded from elsewhere, so it
 * works offline and on Workers alike. The API key is pasted into the page, kept in sessionStorage and sent as a
 * bearer token by the page's own fetch calls; the routes here need no key. Not part of the OpenAPI document.
 */
import { Hono } from 'hono';
import type { AppEnv } from '../../router';
import { DASHBOARD_HTML } from './page';
import { DASHBOARD_JS } from './script';

export const dashboardRouter = new Hono<AppEnv>();

// Only our own script and same-origin fetches; no inline scripts, no frames.
const CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

dashboardRouter.get('/dashboard', (c) =>
  c.body(DASHBOARD_HTML, 200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': CSP, 'cache-control': 'no-cache' }),
);

dashboardRouter.get('/dashboard/app.js', (c) =>
  c.body(DASHBOARD_JS, 200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }),
);
