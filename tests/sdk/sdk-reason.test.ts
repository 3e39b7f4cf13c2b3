/**
 * `reason()` and `reasonStream()` of the TypeScript SDK over HTTP with the onnxruntime-node engine on the bundled
 * tiny model (models/tiny, or TINY_MODEL_DIR). Skipped when the model folder has no model.onnx.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main';
import { createNodeEngineRegistry } from '../../src/engine/node-engines';
import type { ReasonChunk, ReasonVoteChunk } from '../../sdk/typescript';
import { startSdkServer, type SdkServer } from './server';

const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');
const HAVE_MODEL = existsSync(resolve(FOLDER, 'model.onnx')) && existsSync(resolve(FOLDER, 'tokenizer.json'));
const BODY = { model: 'tiny-arith', prompt: 'Tom has 4 cars and buys 5 more. How many cars does Tom have?', n: 2, seed: 11, max_tokens: 32, soft_thinking: { max_thinking_tokens: 20 } };

let s: SdkServer;
beforeAll(async () => {
  if (!HAVE_MODEL) return;
  s = await startSdkServer();
  s.t.deps.engines = createNodeEngineRegistry({ models: { 'tiny-arith': { engine: 'onnx', folder: FOLDER } } });
}, 60_000);
afterAll(() => s?.close());

describe.skipIf(!HAVE_MODEL)('reasoning through the SDK (bundled tiny model)', () => {
  it('reason() returns n samples and a vote; reasonStream() with the same seed streams the same text and vote', async () => {
    const api = s.sdk();
    const result = await api.reason(BODY);
    expect(result.object).toBe('reason.result');
    expect(result.choices).toHaveLength(2);
    expect(result.aggregate.samples).toBe(2);

    const chunks = [];
    for await (const c of api.reasonStream(BODY)) chunks.push(c);
    const vote = chunks.at(-1) as ReasonVoteChunk;
    expect(vote.object).toBe('reason.vote');
    expect(vote.aggregate).toEqual(result.aggregate);
    for (const choice of result.choices) {
      const mine = (chunks.slice(0, -1) as ReasonChunk[]).flatMap((c) => c.choices).filter((c) => c.index === choice.index);
      expect(mine.map((c) => c.delta.reasoning ?? '').join('')).toBe(choice.reasoning);
      expect(mine.map((c) => c.delta.content ?? '').join('')).toBe(choice.answer);
      expect(mine.at(-1)!.finish_reason).toBe(choice.finish_reason);
    }
  }, 120_000);

  it('the CLI prints the samples and the vote, and --stream ends with the same vote', async () => {
    const run = async (...extra: string[]) => {
      const out: string[] = [];
      const code = await main(['reason', BODY.prompt, '--n', '2', '--seed', '11', '--max-tokens', '32', ...extra], {
        env: { SOFT_REASON_API_KEY: s.key, SOFT_REASON_BASE_URL: s.base },
        out: (l) => out.push(l),
        err: (l) => out.push(l),
      });
      expect(code, out.join('\n')).toBe(0);
      return out;
    };
    const json = JSON.parse((await run('--json')).join('\n'));
    expect(json.choices).toHaveLength(2);
    const plain = (await run()).join('\n').split('\n');
    expect(plain).toHaveLength(3);
    expect(plain.at(-1)).toMatch(new RegExp(`^answer: .* \\(${json.aggregate.votes}/2 votes`));
    const streamed = await run('--stream');
    expect(streamed.at(-1)).toBe(`answer: ${json.aggregate.answer ?? '-'}  (${json.aggregate.votes}/${json.aggregate.samples} votes, seed 11, ${json.usage.total_tokens} tokens)`);
    expect(streamed.filter((l) => /^\[\d\] done: /.test(l))).toHaveLength(2);
  }, 120_000);
});
