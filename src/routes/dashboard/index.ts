/**
 * `/dashboard`: a web page over the public API: models; fine-tuning jobs with live charts, a metrics table,
 * cancel / pause / resume, and a form that uploads data and creates a job; and a reasoning playground (n samples
 * side by side, the vote histogram, the soft-thought view, two models compared on one seed). Static HTML, one
 * stylesheet, a few ES modules (./browser/) and the vendored uPlot (vendor/uplot), all served from here: no build
 * step, nothing loaded from elsewhere, so it works offline and on Workers alike. The API key is pasted into the page,
 * kept in sessionStorage and sent as a bearer token by the page's own fetch calls; these routes need no key. Not
 * part of the OpenAPI document.
 */
import { Hono } from 'hono';
import { UPLOT_CSS, UPLOT_JS } from '../../../vendor/uplot/uplot-assets';
import type { AppEnv } from '../../router';
import { APP_JS } from './browser/app';
import { CHARTS_JS } from './browser/charts';
import { JOB_FORM_JS } from './browser/job-form';
import { JOBS_JS } from './browser/jobs';
import { PLAYGROUND_JS } from './browser/playground';
import { UTIL_JS } from './browser/util';
import { DASHBOARD_HTML } from './page';
import { DASHBOARD_CSS } from './styles';

export const dashboardRouter = new Hono<AppEnv>();

// Scripts and styles only from this origin (no inline code: styles set from scripts go through the CSSOM, which
// style-src does not restrict); requests only to this origin; no frames, no form posts, no plugins.
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'";

/** The page's modules, served as /dashboard/<name>; they import each other by these names. */
export const DASHBOARD_MODULES: Record<string, string> = {
  'app.js': APP_JS,
  'util.js': UTIL_JS,
  'charts.js': CHARTS_JS,
  'jobs.js': JOBS_JS,
  'job-form.js': JOB_FORM_JS,
  'playground.js': PLAYGROUND_JS,
};

const ASSETS: Record<string, { body: string; type: string }> = {
  ...Object.fromEntries(Object.entries(DASHBOARD_MODULES).map(([name, body]) => [name, { body, type: 'text/javascript; charset=utf-8' }])),
  'app.css': { body: DASHBOARD_CSS, type: 'text/css; charset=utf-8' },
  'uplot.js': { body: UPLOT_JS, type: 'text/javascript; charset=utf-8' },
  'uplot.css': { body: UPLOT_CSS, type: 'text/css; charset=utf-8' },
};

dashboardRouter.get('/dashboard', (c) =>
  c.body(DASHBOARD_HTML, 200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': DASHBOARD_CSP, 'cache-control': 'no-cache' }),
);

dashboardRouter.get('/dashboard/:asset', (c) => {
  const asset = Object.hasOwn(ASSETS, c.req.param('asset')) ? ASSETS[c.req.param('asset')] : undefined;
  if (!asset) return c.notFound();
  return c.body(asset.body, 200, { 'content-type': asset.type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
});
