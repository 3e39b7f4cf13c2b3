/** The served OpenAPI document equals the committed one, and the reference page works without a network. */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app';

let t: TestApp;
beforeEach(async () => {
  t = await makeTestApp();
});
afterEach(() => t.close());

describe('OpenAPI and docs', () => {
  it('serves_the_committed_openapi_3_1_document', async () => {
    const served = (await (await t.fetch('http://localhost/openapi.json')).json()) as Record<string, any>;
    const committed = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
    expect(served).toEqual(committed);
    expect(served.openapi).toBe('3.1.0');
    expect(Object.keys(served.paths)).toEqual(expect.arrayContaining(['/v1/files', '/v1/finetune', '/v1/fine_tuning/jobs/{job_id}/events', '/v1/models']));
    // Every documented error uses the envelope.
    expect(served.paths['/v1/finetune'].post.responses['400'].content['application/json'].schema.$ref).toBe('#/components/schemas/Error');
  });

  it('serves_an_api_reference_page_whose_script_is_local', async () => {
    const html = await (await t.fetch('http://localhost/docs')).text();
    expect(html).toContain('src="/docs/scalar.js"');
    expect(html).not.toMatch(/https:\/\/cdn\./);
    const js = await t.fetch('http://localhost/docs/scalar.js');
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
    expect((await js.text()).length).toBeGreaterThan(1_000_000);
  });
});
