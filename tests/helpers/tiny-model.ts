/** The bundled tiny model's folder (models/tiny, or TINY_MODEL_DIR) and its test prompts, for the engine tests. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export const TINY_FOLDER = resolve(__dirname, '../..', process.env.TINY_MODEL_DIR ?? 'models/tiny');

/** The prompts of the folder's data/test.jsonl, in order. */
export function tinyPrompts(folder = TINY_FOLDER): string[] {
  return readFileSync(resolve(folder, 'data/test.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line).prompt);
}
