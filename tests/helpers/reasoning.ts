/**
 * The real app serving the bundled tiny model (models/tiny, or TINY_MODEL_DIR) as "tiny-arith" with the Node engine
 * registry, one tenant and its client; and the `data:` payloads of an SSE response (eventsource-parser).
 */
import { resolve } from 'node:path';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { createNodeEngineRegistry } from '../../src/engine/node-engines';
import { makeTestApp, type TestApp } from './app';
import { client } from './http';

export const MODEL = 'tiny-arith';
export const QUESTION = 'Mia has 7 apples. She buys 3 more. How many apples does Mia have now?';
const FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');

export async function makeReasoningApp(): Promise<{ t: TestApp; api: ReturnType<typeof client> }> {
  const t = await makeTestApp();
  t.deps.engines = createNodeEngineRegistry({ models: { [MODEL]: { engine: 'onnx', folder: FOLDER } } });
  const { key } = await t.newTenant();
  return { t, api: client(t.fetch, key) };
}

export async function sseData(res: Response): Promise<string[]> {
  const messages: string[] = [];
  const parser = createParser({ onEvent: (event: EventSourceMessage) => messages.push(event.data) });
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
  return messages;
}

/** The JSON chunks of an SSE response, checking that it ends with [DONE]. */
export async function sseChunks(res: Response): Promise<any[]> {
  const data = await sseData(res);
  if (data[data.length - 1] !== '[DONE]') throw new Error(`stream did not end with [DONE]: ${data.slice(-2).join(' | ')}`);
  return data.slice(0, -1).map((d) => JSON.parse(d));
}
