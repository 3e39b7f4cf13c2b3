/**
 * OpenAI's fine-tuning wire shapes on /v1/fine_tuning/jobs (issue 12): the nested `method`, the job's top-level
 * `hyperparameters`, `integrations`, `trained_tokens`, `result_files` (a downloadable step-metrics CSV) and
 * `estimated_finish`; the `metadata[key]=value` list filter; an unknown `after` cursor answered 400 on every list;
 * validation messages that say what zod found, with `param` naming the field (or the unknown key).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestApp, WORKER_TOKEN, type TestApp } from '../helpers/app';
import { client, GOOD_LINES, jsonl } from '../helpers/http';
import { TestWorker } from '../helpers/worker-client';

let t: TestApp;
let api: ReturnType<typeof client>;
let worker: TestWorker;
let fileId: string;
beforeEach(async () => {
  t = await makeTestApp();
  api = client(t.fetch, (await t.newTenant()).key);
  worker = new TestWorker(t.fetch, WORKER_TOKEN);
  fileId = ((await (await api.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
});
afterEach(() => t.close());

const create = async (body: Record<string, unknown> = {}) => {
  const res = await api.post('/v1/fine_tuning/jobs', { model: 'tiny-arith', training_file: fileId, ...body });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Record<string, any>;
};
const error = async (res: Response) => ((await res.json()) as { error: { message: string; param: string | null; code: string } }).error;

describe('the job object', () => {
  it('accepts_openais_nested_method_and_returns_hyperparameters_at_the_top_level', async () => {
    const job = await create({ method: { type: 'grpo', grpo: { hyperparameters: { batch_size: 2, n_steps: 3 } } } });
    expect(job.method.type).toBe('grpo');
    expect(job.method.hyperparameters).toMatchObject({ batch_size: 2, n_steps: 3, group_size: 4 });
    expect(job.hyperparameters).toEqual(job.method.hyperparameters);
    expect(job).toMatchObject({ integrations: [], result_files: [], trained_tokens: null, estimated_finish: null });
    // ours still works, and both at once is ambiguous
    expect((await create({ method: { type: 'grpo', hyperparameters: { batch_size: 2 } } })).hyperparameters.batch_size).toBe(2);
    const both = await api.post('/v1/fine_tuning/jobs', {
      model: 'tiny-arith',
      training_file: fileId,
      method: { type: 'grpo', hyperparameters: {}, grpo: { hyperparameters: {} } },
    });
    expect(both.status).toBe(400);
    expect((await error(both)).param).toBe('method.grpo.hyperparameters');
  });

  it('names_a_bad_nested_value_where_it_was_sent', async () => {
    const res = await api.post('/v1/fine_tuning/jobs', {
      model: 'tiny-arith',
      training_file: fileId,
      method: { type: 'soft_grpo', soft_grpo: { hyperparameters: { batch_size: 'two' } } },
    });
    expect(await error(res)).toMatchObject({
      param: 'method.soft_grpo.hyperparameters.batch_size',
      message: 'method.soft_grpo.hyperparameters.batch_size: expected number, received string (or "auto")',
    });
    const other = await api.post('/v1/fine_tuning/jobs', { model: 'tiny-arith', training_file: fileId, method: { type: 'grpo', soft_grpo: {} } });
    expect((await error(other)).param).toBe('method.soft_grpo');
    const wandb = await api.post('/v1/fine_tuning/jobs', { model: 'tiny-arith', training_file: fileId, integrations: [{ type: 'wandb' }] });
    expect((await error(wandb)).param).toBe('integrations');
    expect((await create({ integrations: [] })).integrations).toEqual([]);
  });

  it('reports_trained_tokens_a_result_csv_and_an_estimated_finish_from_the_worker', async () => {
    const job = await create({ method: { type: 'grpo', hyperparameters: { n_steps: 4 } } });
    const claim = (await worker.claim())!;
    t.clock.advance(10);
    await worker.heartbeat(job.id, claim.lease.token, 2);
    const running = (await (await api.get(`/v1/fine_tuning/jobs/${job.id}`)).json()) as any;
    // 2 of 4 steps in 10 s: about 10 s to go
    expect(running.estimated_finish).toBe(Math.floor(t.clock.now() / 1000) + 10);
    expect(running.trained_tokens).toBeNull();
    await worker.events(job.id, claim.lease.token, [
      { seq: 0, type: 'metrics', message: 'step 1', data: { step: 1, reward_mean: 0.25, step_tokens: 100 } },
      { seq: 1, type: 'metrics', message: 'step 2', data: { step: 2, reward_mean: 0.5, step_tokens: 120, note: 'x' } },
      { seq: 2, type: 'eval', message: 'eval', data: { step: 2, pass_at_1: 0.75 } },
    ]);
    await worker.checkpoint(job.id, claim.lease.token, 2, { 'model.safetensors': 'w' });
    expect((await worker.finish(job.id, claim.lease.token)).status).toBe(200);
    const done = (await (await api.get(`/v1/fine_tuning/jobs/${job.id}`)).json()) as any;
    expect(done).toMatchObject({ status: 'succeeded', trained_tokens: 220, estimated_finish: null });
    expect(done.result_files).toHaveLength(1);
    const file = (await (await api.get(`/v1/files/${done.result_files[0]}`)).json()) as any;
    expect(file).toMatchObject({ purpose: 'fine-tune-results', filename: `${job.id}-step_metrics.csv`, examples: 2 });
    const content = await api.get(`/v1/files/${file.id}/content`);
    expect(content.headers.get('content-type')).toBe('text/csv');
    expect(await content.text()).toBe('step,eval_pass_at_1,reward_mean,step_tokens\n1,,0.25,100\n2,0.75,0.5,120\n');
    const finished = (await (await api.get(`/v1/fine_tuning/jobs/${job.id}/events?limit=1`)).json()) as any;
    expect(finished.data[0]).toMatchObject({ type: 'status', data: { status: 'succeeded', result_files: done.result_files } });
  });
});

describe('list filters and cursors', () => {
  it('filters_jobs_by_every_given_metadata_pair', async () => {
    const a = await create({ metadata: { team: 'a', env: 'prod' } });
    const b = await create({ metadata: { team: 'b', 'odd key.with "quotes"': '' } });
    const none = await create();
    const ids = async (query: string) => ((await (await api.get(`/v1/fine_tuning/jobs?${query}`)).json()) as any).data.map((j: any) => j.id);
    expect(await ids('metadata[team]=a')).toEqual([a.id]);
    expect(await ids('metadata[team]=a&metadata[env]=prod')).toEqual([a.id]);
    expect(await ids('metadata[team]=a&metadata[env]=dev')).toEqual([]);
    expect(await ids(`metadata[${encodeURIComponent('odd key.with "quotes"')}]=`)).toEqual([b.id]);
    expect(await ids('metadata=null')).toEqual([none.id]);
    expect((await ids('limit=10')).sort()).toEqual([a.id, b.id, none.id].sort());
    const mixed = await api.get('/v1/fine_tuning/jobs?metadata=null&metadata[team]=a');
    expect((await error(mixed)).param).toBe('metadata');
  });

  it('answers_400_naming_after_for_an_unknown_cursor_on_every_list', async () => {
    const job = await create();
    const other = client(t.fetch, (await t.newTenant('other')).key);
    const otherFile = ((await (await other.upload(jsonl(...GOOD_LINES))).json()) as { id: string }).id;
    const lists = [
      `/v1/files?after=file-unknown`,
      `/v1/files?after=${otherFile}`, // another tenant's file is not in this list
      `/v1/fine_tuning/jobs?after=ftjob-unknown`,
      `/v1/fine_tuning/jobs/${job.id}/events?after=ftevent-999999`,
      `/v1/fine_tuning/jobs/${job.id}/events?after=bogus`,
      `/v1/fine_tuning/jobs/${job.id}/events?after=bogus&stream=true`,
      `/v1/fine_tuning/jobs/${job.id}/checkpoints?after=ftckpt-unknown`,
    ];
    for (const path of lists) {
      const res = await api.get(path);
      expect(res.status, path).toBe(400);
      expect(await error(res), path).toMatchObject({ param: 'after', code: 'invalid_cursor' });
    }
    // another job's event is not a cursor of this job's events
    const second = await create();
    const secondsEvent = ((await (await api.get(`/v1/fine_tuning/jobs/${second.id}/events`)).json()) as any).data[0].id;
    expect((await api.get(`/v1/fine_tuning/jobs/${job.id}/events?after=${secondsEvent}`)).status).toBe(400);
    // known cursors still page
    expect((await api.get(`/v1/files?after=${fileId}`)).status).toBe(200);
    expect((await api.get(`/v1/fine_tuning/jobs?after=${job.id}`)).status).toBe(200);
  });
});

describe('validation messages', () => {
  it('says_what_was_received_for_a_present_value_of_the_wrong_type', async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ model: 123, training_file: fileId }, 'model', 'model: expected string, received number'],
      [{ model: 'tiny-arith' }, 'training_file', 'training_file: is required'],
      [{ model: 'tiny-arith', training_file: fileId, seed: 2.5 }, 'seed', 'seed: expected integer, received number'],
      [{ model: 'tiny-arith', training_file: fileId, seed: '7' }, 'seed', 'seed: expected number, received string'],
      [{ model: 'tiny-arith', training_file: fileId, warp: 1 }, 'warp', 'warp: is not a known field'],
    ];
    for (const [body, param, message] of cases) {
      const res = await api.post('/v1/fine_tuning/jobs', body);
      expect(res.status).toBe(400);
      expect(await error(res)).toMatchObject({ param, message, code: 'invalid_value' });
    }
    const reason = async (body: Record<string, unknown>) => error(await api.post('/v1/reason', { model: 'tiny-arith', ...body }));
    expect(await reason({ prompt: 5 })).toMatchObject({ param: 'prompt', message: 'prompt: expected string, received number' });
    expect(await reason({ prompt: 'x', n: 2.5 })).toMatchObject({ param: 'n', message: 'n: expected integer, received number' });
    expect(await reason({ prompt: 'x', best_of: 2 })).toMatchObject({ param: 'best_of', message: 'best_of: is not a known field' });
  });
});
