/**
 * The dashboard inside the real Workers runtime: the page, its modules and the vendored uPlot come out of the Worker
 * bundle (the Worker cannot read files, so they are strings in the bundle), with the same strict CSP as on Node.
 */
import { describe, expect, it } from 'vitest';
import { DASHBOARD_CSP, DASHBOARD_MODULES } from '../../src/routes/dashboard';
import { UPLOT_JS } from '../../vendor/uplot/uplot-assets';
import { workerFetch } from './harness';

describe('the dashboard on Workers', () => {
  it('serves_the_page_modules_and_vendored_uplot_from_the_bundle', async () => {
    const page = await workerFetch('/dashboard');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(await page.text()).toContain('<script type="module" src="/dashboard/app.js"></script>');
    for (const name of [...Object.keys(DASHBOARD_MODULES), 'app.css', 'uplot.css']) {
      const res = await workerFetch(`/dashboard/${name}`);
      expect(res.status, name).toBe(200);
      await res.arrayBuffer();
    }
    const uplot = await workerFetch('/dashboard/uplot.js');
    expect(uplot.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await uplot.text()).toBe(UPLOT_JS);
  });
});
