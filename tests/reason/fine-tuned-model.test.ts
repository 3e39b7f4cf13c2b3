/**
 * A fine-tuned checkpoint behind /v1/reason: the API resolves `ft:<base>:<suffix>:<job>[:ckpt-<step>]` to the
 * checkpoint's files in the blob store, the Node registry fetches them into its model cache and serves them with
 * onnxruntime-node; another tenant's checkpoint is a 404. Real app, real SQLite, real blob folder.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoints, jobs } from '../../src/db/schema';
import { OPTIONAL_SERVING_FILES, SERVING_FILES } from '../../src/engine/model-cache';
import { createNodeEngineRegistry } from '../../src/engine/node-engines';
import { makeTestApp, type TestApp } from '../helpers/app';
import { client } from '../helpers/http';

const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');
const BASE = 'tiny-arith';
const JOB = 'ftjob-0123456789abcdefghjkmnpqrs';
const FT_NAME = `ft:${BASE}:arith:${JOB}`;
const QUESTION = 'Tom has 4 pens. He buys 2 more. How many pens does Tom have now?';

let t: TestApp;
let owner: ReturnType<typeof client>;
let stranger: ReturnType<typeof client>;
const cacheDir = mkdtempSync(join(tmpdir(), 'ft-cache-'));

beforeAll(async () => {
  t = await makeTestApp();
  t.deps.engines = createNodeEngineRegistry({ models: {}, blobs: t.deps.blobs, cacheDir });
  const a = await t.newTenant('owner');
  const b = await t.newTenant('stranger');
  owner = client(t.fetch, a.key);
  stranger = client(t.fetch, b.key);
  const now = t.clock.now();
  await t.deps.database.db.insert(jobs).values({
    id: JOB,
    tenantId: a.tenantId,
    model: BASE,
    trainingFile: 'file-x',
    methodType: 'soft_grpo',
    hyperparameters: {},
    grader: { type: 'math' },
    suffix: 'arith',
    seed: 1,
    status: 'succeeded',
    maxAttempts: 3,
    createdAt: now,
    updatedAt: now,
  });
  const prefix = `checkpoints/${JOB}/step-3/`;
  const files = [];
  for (const name of [...SERVING_FILES, ...OPTIONAL_SERVING_FILES]) {
    let content: Buffer;
    try {
      content = readFileSync(join(FOLDER, name));
    } catch {
      continue;
    }
    const info = await t.deps.blobs.put(prefix + name, new Blob([content as BlobPart]).stream());
    files.push({ name, bytes: info.size, sha256: createHash('sha256').update(content).digest('hex') });
  }
  await t.deps.database.db
    .insert(checkpoints)
    .values({ id: 'ckpt-1', jobId: JOB, tenantId: a.tenantId, step: 3, metrics: {}, files, blobPrefix: prefix, createdAt: now });
}, 60_000);

afterAll(() => {
  t?.close();
  rmSync(cacheDir, { recursive: true, force: true });
});

describe('fine-tuned models on /v1/reason', () => {
  it('serves the latest checkpoint and the named checkpoint from the blob store, the same samples for the same seed', async () => {
    const body = { prompt: QUESTION, n: 2, seed: 4, max_tokens: 40 };
    const latest = await owner.post('/v1/reason', { model: FT_NAME, ...body });
    expect(latest.status).toBe(200);
    const named = await owner.post('/v1/reason', { model: `${FT_NAME}:ckpt-3`, ...body });
    expect(named.status).toBe(200);
    const [a, b] = [(await latest.json()) as any, (await named.json()) as any];
    expect(a.model).toBe(FT_NAME);
    expect(a.choices).toHaveLength(2);
    expect(b.choices).toEqual(a.choices);
  }, 60_000);

  it("answers 404 naming model for another tenant's checkpoint and for a step that does not exist", async () => {
    const other = await stranger.post('/v1/reason', { model: FT_NAME, prompt: QUESTION });
    expect(other.status).toBe(404);
    expect(((await other.json()) as any).error.param).toBe('model');
    const missing = await owner.post('/v1/reason', { model: `${FT_NAME}:ckpt-9`, prompt: QUESTION });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).error.param).toBe('model');
  });
});
