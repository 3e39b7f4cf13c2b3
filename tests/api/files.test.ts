/** /v1/files through the real app on a real SQLite file and blob folder. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { sha256 } from '../helpers/worker-client';

let t: TestApp;
let api: ReturnType<typeof client>;
beforeEach(async () => {
  t = await makeTestApp({ config: { limits: { ...(await import('../../src/ports')).DEFAULT_LIMITS, maxFileBytes: 4096, maxLineBytes: 512 } } });
  api = client(t.fetch, (await t.newTenant()).key);
});
afterEach(() => t.close());

async function expectRejected(res: Response, status: number, message: string | RegExp) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { message: string; param: string | null; type: string } };
  expect(body.error.message).toMatch(message);
  expect(t.rows().files).toBe(0);
  expect(t.blobCount('files')).toBe(0);
  return body.error;
}

describe('upload', () => {
  it('stores_a_valid_multipart_jsonl_upload_and_serves_its_content', async () => {
    const content = jsonl(...GOOD_LINES);
    const res = await api.upload(content, 'arith.jsonl');
    expect(res.status).toBe(200);
    const file = (await res.json()) as Record<string, unknown>;
    expect(file).toMatchObject({ object: 'file', purpose: 'fine-tune', filename: 'arith.jsonl', examples: 2, status: 'processed' });
    expect(file.bytes).toBe(new TextEncoder().encode(content).length);
    expect(file.sha256).toBe(sha256(content));
    const got = await api.get(`/v1/files/${file.id}`);
    expect(await got.json()).toEqual(file);
    const download = await api.get(`/v1/files/${file.id}/content`);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe(content);
  });

  it('serves_content_of_a_file_with_a_non_ascii_name', async () => {
    const file = (await (await api.upload(jsonl(GOOD_LINES[0]), 'données-日本.jsonl')).json()) as { id: string; filename: string };
    expect(file.filename).toBe('données-日本.jsonl');
    const res = await api.get(`/v1/files/${file.id}/content`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toContain(`filename*=UTF-8''${encodeURIComponent('données-日本.jsonl')}`);
  });

  it('accepts_a_raw_jsonl_body_with_purpose_in_the_query', async () => {
    const res = await t.fetch('http://localhost/v1/files?purpose=fine-tune&filename=raw.jsonl', {
      method: 'POST',
      headers: { authorization: `Bearer ${(await t.newTenant('raw')).key}`, 'content-type': 'application/jsonl' },
      body: jsonl(GOOD_LINES[0]),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ filename: 'raw.jsonl', examples: 1 });
  });

  it('rejects_jsonl_line_without_answer_naming_line_3', async () => {
    const err = await expectRejected(await api.upload(jsonl(GOOD_LINES[0], GOOD_LINES[1], { prompt: 'x' })), 400, 'line 3: missing "answer"');
    expect(err.param).toBe('file');
  });

  it('rejects_invalid_json_with_its_line_number', async () => {
    await expectRejected(await api.upload(jsonl(GOOD_LINES[0], '{"prompt": "x", answer: 1}')), 400, /^line 2: invalid JSON/);
  });

  it('rejects_bad_message_roles_and_wrong_answer_types', async () => {
    await expectRejected(
      await api.upload(jsonl({ messages: [{ role: 'robot', content: 'hi' }], answer: 1 })),
      400,
      'line 1: "messages[0]" must be an object with "role" (one of system, user, assistant) and string "content"',
    );
    await expectRejected(await api.upload(jsonl({ prompt: 'x', answer: [1] })), 400, 'line 1: "answer" must be a string or a finite number');
    await expectRejected(await api.upload(jsonl({ answer: 1 })), 400, 'line 1: needs exactly one of "prompt" or "messages"');
    await expectRejected(await api.upload(jsonl('[1,2]')), 400, 'line 1: must be a JSON object');
  });

  it('counts_lines_across_chunk_boundaries_and_skips_blank_lines', async () => {
    const lines = Array.from({ length: 30 }, (_, i) => ({ prompt: `q${i}`, answer: i }));
    const content = lines.map((l) => JSON.stringify(l)).join('\n\n') + '\n';
    const res = await api.upload(content);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ examples: 30 });
  });

  it('rejects_a_line_longer_than_the_line_limit', async () => {
    await expectRejected(await api.upload(jsonl(GOOD_LINES[0], { prompt: 'x'.repeat(600), answer: 1 })), 400, 'line 2: longer than 512 bytes');
  });

  it('rejects_a_file_larger_than_the_file_limit_with_413', async () => {
    const many = Array.from({ length: 200 }, (_, i) => ({ prompt: `question ${i}`, answer: i }));
    const err = await expectRejected(await api.upload(jsonl(...many)), 413, 'File larger than 4096 bytes');
    expect(err.param).toBe('file');
  });

  it('rejects_an_empty_file_and_a_wrong_purpose_and_a_missing_file_part', async () => {
    await expectRejected(await api.upload('\n\n'), 400, 'no examples');
    await expectRejected(await api.upload(jsonl(GOOD_LINES[0]), 'a.jsonl', 'assistants'), 400, /^purpose: must be "fine-tune"/);
    const form = new FormData();
    form.append('purpose', 'fine-tune');
    const res = await t.fetch('http://localhost/v1/files', {
      method: 'POST',
      headers: { authorization: `Bearer ${(await t.newTenant('x')).key}` },
      body: form,
    });
    await expectRejected(res, 400, 'file: is required');
  });

  it('rejects_an_unsupported_content_type_with_415', async () => {
    const res = await api.post('/v1/files', { prompt: 'x', answer: 1 });
    await expectRejected(res, 415, /Content-Type must be/);
  });
});

describe('list, retrieve, delete', () => {
  it('lists_newest_first_with_after_limit_and_has_more', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      t.clock.advance(1);
      ids.push(((await (await api.upload(jsonl(GOOD_LINES[0]), `f${i}.jsonl`)).json()) as { id: string }).id);
    }
    const p1 = (await (await api.get('/v1/files?limit=2')).json()) as { data: { id: string }[]; has_more: boolean; last_id: string };
    expect(p1.data.map((f) => f.id)).toEqual([ids[4], ids[3]]);
    expect(p1.has_more).toBe(true);
    const p2 = (await (await api.get(`/v1/files?limit=2&after=${p1.last_id}`)).json()) as typeof p1;
    expect(p2.data.map((f) => f.id)).toEqual([ids[2], ids[1]]);
    const p3 = (await (await api.get(`/v1/files?limit=2&after=${p2.last_id}`)).json()) as typeof p1;
    expect(p3.data.map((f) => f.id)).toEqual([ids[0]]);
    expect(p3.has_more).toBe(false);
  });

  it('rejects_a_limit_out_of_range_naming_limit', async () => {
    const res = await api.get('/v1/files?limit=1000');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe('limit');
  });

  it('deletes_a_file_with_its_blob', async () => {
    const file = (await (await api.upload(jsonl(GOOD_LINES[0]))).json()) as { id: string };
    expect(t.blobCount('files')).toBe(1);
    const res = await api.delete(`/v1/files/${file.id}`);
    expect(await res.json()).toEqual({ id: file.id, object: 'file', deleted: true });
    expect(t.rows().files).toBe(0);
    expect(t.blobCount('files')).toBe(0);
    expect((await api.get(`/v1/files/${file.id}`)).status).toBe(404);
  });

  it('answers_404_for_another_tenants_file_on_every_route', async () => {
    const file = (await (await api.upload(jsonl(GOOD_LINES[0]))).json()) as { id: string };
    const other = client(t.fetch, (await t.newTenant('other')).key);
    for (const res of [
      await other.get(`/v1/files/${file.id}`),
      await other.get(`/v1/files/${file.id}/content`),
      await other.delete(`/v1/files/${file.id}`),
    ]) {
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe('not_found_error');
    }
    expect(((await (await other.get('/v1/files')).json()) as { data: unknown[] }).data).toEqual([]);
    expect(t.rows().files).toBe(1);
  });
});
