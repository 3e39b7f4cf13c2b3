/**
 * What job creation checks beyond the body's shape, so that a job the API accepts is one the worker can run:
 * - every "auto" hyperparameter resolved with the base model's manifest, its context length and the training
 *   file's example count, and the resolved set checked with every rule the trainer applies
 *   (contract/hyperparameters.json, src/contract/hyperparameters.ts); the resolved set is what the job stores;
 * - every training and validation prompt, rendered with the model's chat template and tokenized with its
 *   tokenizer, fits the context with max_response_tokens, unless the request set `prompt_truncation: "left"`
 *   (the worker's softgrpo.data.fit_prompts applies the same rule to the same token counts);
 * - resources.devices against the resolved set (contract/resources.json, src/contract/resources.ts).
 * Runs on Node and on Workers alike: the tokenizer files come from the blob store, as every model file does.
 */
import type { FileRow } from '../../db/schema';
import { LineProblem, exampleMessages } from '../../contract/dataset';
import { HyperparameterError, resolveHyperparameters } from '../../contract/hyperparameters';
import type { Value } from '../../contract/expression';
import { DEVICES_PARAM, RESOURCES_CODE, devicesProblem } from '../../contract/resources';
import { jsonlExamples } from '../../contract/jsonl';
import { ChatTokenizer } from '../../engine/tokenizer';
import type { ChatMessage } from '../../engine/types';
import { ApiError } from '../../errors';
import type { BaseModel, Deps } from '../../ports';

/** Lines named in a prompt_too_long error (the count says how many there are). */
const MAX_NAMED_LINES = 20;

export interface JobFiles {
  training_file: FileRow;
  validation_file: FileRow | null;
}

export const contextLengthOf = (base: BaseModel): number | null => {
  const n = base.manifest.context_length;
  return typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : null;
};

/** The job's hyperparameters, resolved and checked; a 400 naming the field or the lines otherwise. */
export async function resolveJobHyperparameters(
  deps: Deps,
  base: BaseModel,
  method: string,
  hyperparameters: unknown,
  files: JobFiles,
): Promise<Record<string, Value>> {
  const contextLength = contextLengthOf(base);
  let resolved: Record<string, Value>;
  try {
    resolved = resolveHyperparameters(hyperparameters, {
      method,
      trainSize: files.training_file.examples,
      contextLength,
      manifest: base.manifest,
    });
  } catch (e) {
    if (!(e instanceof HyperparameterError)) throw e;
    if (e.source === 'manifest')
      throw new ApiError(400, `model: the manifest of '${base.id}' cannot be used: ${e.message}`, {
        param: 'model',
        code: 'invalid_model_manifest',
      });
    const param = e.param === 'hyperparameters' ? 'method.hyperparameters' : `method.hyperparameters.${e.param}`;
    throw new ApiError(400, `${param}: ${e.detail}`, { param, code: e.code });
  }
  if (contextLength !== null && resolved.prompt_truncation === 'none')
    await checkPromptLengths(deps, base, contextLength, resolved.max_response_tokens as number, files);
  return resolved;
}

async function checkPromptLengths(deps: Deps, base: BaseModel, contextLength: number, maxResponse: number, files: JobFiles) {
  const budget = contextLength - maxResponse;
  const { tokenizer, tokensPerByte } = await tokenizerOf(deps, base);
  for (const param of ['training_file', 'validation_file'] as const) {
    const file = files[param];
    if (!file) continue;
    const blob = await deps.blobs.get(file.blobKey);
    if (!blob) throw new Error(`file ${file.id}: its blob ${file.blobKey} is missing`);
    const long: string[] = [];
    let count = 0;
    try {
      for await (const { line, example } of jsonlExamples(blob.body, Number.MAX_SAFE_INTEGER)) {
        const text = tokenizer.renderChat(exampleMessages(example) as ChatMessage[]);
        if (tokensPerByte !== null && tokensPerByte * utf8Length(text) <= budget) continue; // fits for sure
        const tokens = tokenizer.encode(text).length;
        if (tokens <= budget) continue;
        if (++count <= MAX_NAMED_LINES) long.push(`line ${line} (${tokens} tokens)`);
      }
    } catch (e) {
      // A file stored before a line rule it breaks existed: named here rather than by a failed job.
      if (e instanceof LineProblem) throw new ApiError(400, `${param}: ${e.message}`, { param, code: 'invalid_jsonl' });
      throw e;
    }
    if (count > 0)
      throw new ApiError(
        400,
        `${param}: ${count} prompt${count > 1 ? 's do' : ' does'} not fit the context of model '${base.id}' ` +
          `(${contextLength} tokens, ${maxResponse} of them max_response_tokens, so at most ${budget} prompt tokens): ` +
          `${long.join(', ')}${count > long.length ? ', ...' : ''}. Shorten them, lower max_response_tokens, or set ` +
          `hyperparameter prompt_truncation to "left" to keep each prompt's last ${budget} tokens.`,
        { param, code: 'prompt_too_long' },
      );
  }
}

/**
 * The rules of contract/resources.json on the job's devices and resolved hyperparameters (the worker checks the same
 * file before training: softgrpo.distributed.check_devices): each rank takes an equal part of every mini-batch's
 * rollouts, the last mini-batch of a step included, and LoRA trains on one device. A 400 naming resources.devices
 * (the message names the hyperparameters involved) otherwise.
 */
export function checkJobResources(devices: number, hyperparameters: Record<string, Value>): void {
  const problem = devicesProblem(devices, hyperparameters);
  if (problem)
    throw new ApiError(400, `${DEVICES_PARAM}: ${problem.detail}`, { param: DEVICES_PARAM, code: RESOURCES_CODE });
}

/** UTF-8 length of a well-formed string (the line rules exclude lone surrogates). */
function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3; // a surrogate pair: 2 + 2 bytes
  }
  return n;
}

/**
 * At most how many tokens one UTF-8 byte of text becomes, when the tokenizer's design bounds it (else null, and
 * every prompt is tokenized): a byte-level BPE gives every byte one symbol and every token at least one symbol
 * (added tokens are split out first, each at least one byte), so tokens <= bytes; an NFC / NFD normalizer can
 * make text at most 3 times longer in UTF-8. Only prompts longer than the budget by this bound are tokenized.
 */
function tokensPerByteBound(json: Record<string, any>): number | null {
  const list = (x: any, key: string): any[] => (x == null ? [] : x.type === 'Sequence' ? x[key] ?? [] : [x]);
  const pre = list(json.pre_tokenizer, 'pretokenizers');
  const splitOnly = new Set(['ByteLevel', 'Digits', 'Split', 'Punctuation', 'Whitespace', 'WhitespaceSplit']);
  const byteLevel = pre.some((p) => p.type === 'ByteLevel' && !p.add_prefix_space) && pre.every((p) => splitOnly.has(p.type));
  const normalizers = list(json.normalizer, 'normalizers');
  if (!byteLevel || json.model?.type !== 'BPE' || !normalizers.every((n) => n.type === 'NFC' || n.type === 'NFD')) return null;
  return normalizers.length ? 3 : 1;
}

const tokenizers = new Map<string, Promise<{ tokenizer: ChatTokenizer; tokensPerByte: number | null }>>();

/** The base model's chat tokenizer, read from the blob store once per process (isolate) and model version. */
function tokenizerOf(deps: Deps, base: BaseModel) {
  const sha = (name: string) => base.files.find((f) => f.name === name)?.sha256;
  const key = `${base.blobPrefix}:${sha('tokenizer.json')}:${sha('tokenizer_config.json')}`;
  let entry = tokenizers.get(key);
  if (!entry) {
    entry = (async () => {
      const read = async (name: string) => {
        const blob = await deps.blobs.get(`${base.blobPrefix}${name}`);
        if (!blob) throw new Error(`base model '${base.id}': ${name} is missing from the blob store`);
        return JSON.parse(await new Response(blob.body).text()) as Record<string, any>;
      };
      const [json, config] = await Promise.all([read('tokenizer.json'), read('tokenizer_config.json')]);
      return { tokenizer: ChatTokenizer.fromJson(json, config), tokensPerByte: tokensPerByteBound(json) };
    })();
    entry.catch(() => tokenizers.delete(key));
    tokenizers.set(key, entry);
  }
  return entry;
}
