/**
 * Memory a fine-tuning job needs on one device, estimated at job creation from the base model's config.json and the
 * resolved hyperparameters, against the memory of the workers' devices (Config.workerDeviceMemoryBytes; Node env
 * WORKER_DEVICE_MEMORY_GB, default 80). The constants live once in contract/model-sizes.json ("memory"); the parts:
 *
 *   weights      parameters x 4 (float32 master weights), sharded over `devices` with full fine-tuning (FSDP2)
 *   optimizer    trainable parameters x (4 gradient + adam_bytes_per_trainable); LoRA: rank x sum(in + out) of the
 *                seven projections of every layer; sharded like the weights
 *   reference    a frozen copy of the weights for the KL term (kl_beta > 0 with full fine-tuning only)
 *   kv_cache     rollout rows (batch_size x group_size / devices) x sequence x layers x 2 x kv heads x head dim x 2
 *   activations  mini-batch rows (mini_batch_size x group_size / devices) x sequence x layers x hidden x
 *                activation_bytes_per_hidden
 *   logits       mini-batch rows x max_response_tokens x vocabulary x logits_bytes_per_vocab
 *
 * sequence = max_response_tokens + prompt allowance (at most the context length); the total is times
 * overhead_factor. A coarse upper bound meant to catch jobs that cannot fit anywhere, not to plan a packing.
 */
import sizes from '../../contract/model-sizes.json';
import { ApiError } from '../errors';
import type { BaseModel, Deps } from '../ports';

const M = sizes.memory;
const PROMPT_ALLOWANCE = 512;
const GIB = 1024 ** 3;
export const DEFAULT_WORKER_DEVICE_MEMORY_BYTES = 80 * GIB;

export interface ModelShape {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  tie_word_embeddings: boolean;
}

/** The shape of a Hugging Face config.json (Qwen2 / Llama); null when a field is missing. */
export function modelShape(config: Record<string, unknown>): ModelShape | null {
  const n = (k: string) => (typeof config[k] === 'number' && Number.isFinite(config[k]) ? (config[k] as number) : null);
  const heads = n('num_attention_heads');
  const hidden = n('hidden_size');
  const shape = {
    vocab_size: n('vocab_size'),
    hidden_size: hidden,
    intermediate_size: n('intermediate_size'),
    num_hidden_layers: n('num_hidden_layers'),
    num_attention_heads: heads,
    num_key_value_heads: n('num_key_value_heads') ?? heads,
    head_dim: n('head_dim') ?? (hidden && heads ? hidden / heads : null),
  };
  if (Object.values(shape).some((v) => v === null)) return null;
  return { ...(shape as Omit<ModelShape, 'tie_word_embeddings'>), tie_word_embeddings: config.tie_word_embeddings === true };
}

export function parameterCount(s: ModelShape): number {
  const q = s.num_attention_heads * s.head_dim;
  const kv = s.num_key_value_heads * s.head_dim;
  const layer = s.hidden_size * q * 2 + s.hidden_size * kv * 2 + 3 * s.hidden_size * s.intermediate_size + 2 * s.hidden_size;
  return s.vocab_size * s.hidden_size * (s.tie_word_embeddings ? 1 : 2) + s.num_hidden_layers * layer + s.hidden_size;
}

function loraParameters(s: ModelShape, rank: number): number {
  const d = s.hidden_size;
  const q = s.num_attention_heads * s.head_dim;
  const kv = s.num_key_value_heads * s.head_dim;
  const ff = s.intermediate_size;
  return rank * s.num_hidden_layers * (d + q + 2 * (d + kv) + (q + d) + 2 * (d + ff) + (ff + d));
}

export interface MemoryEstimate {
  bytes: number;
  parts: { weights: number; optimizer: number; reference: number; kv_cache: number; activations: number; logits: number };
}

export function estimateJobMemory(s: ModelShape, hp: Record<string, unknown>, devices: number, contextLength: number | null): MemoryEstimate {
  const num = (k: string) => Number(hp[k] ?? 0);
  const lora = num('lora_rank') > 0;
  const params = parameterCount(s);
  const shard = lora ? 1 : Math.max(1, devices);
  const trainable = lora ? loraParameters(s, num('lora_rank')) : params;
  const response = num('max_response_tokens');
  const sequence = Math.min(contextLength ?? Infinity, response + PROMPT_ALLOWANCE);
  const rolloutRows = Math.ceil((num('batch_size') * num('group_size')) / Math.max(1, devices));
  const miniRows = Math.ceil((num('mini_batch_size') * num('group_size')) / Math.max(1, devices));
  const parts = {
    weights: (params * M.dtype_bytes.float32) / shard,
    optimizer: (trainable * (M.dtype_bytes.float32 + M.adam_bytes_per_trainable)) / shard,
    reference: !lora && num('kl_beta') > 0 ? (params * M.dtype_bytes.float32) / shard : 0,
    kv_cache: rolloutRows * sequence * s.num_hidden_layers * 2 * s.num_key_value_heads * s.head_dim * M.dtype_bytes.bfloat16,
    activations: miniRows * sequence * s.num_hidden_layers * s.hidden_size * M.activation_bytes_per_hidden,
    logits: miniRows * response * s.vocab_size * M.logits_bytes_per_vocab,
  };
  const bytes = Object.values(parts).reduce((a, b) => a + b, 0) * M.overhead_factor;
  return { bytes, parts };
}

const gib = (b: number) => `${(b / GIB).toFixed(1)} GiB`;

/**
 * A 400 naming what to change when the estimate exceeds the workers' device memory: the field behind the largest
 * part (mini_batch_size for activations and logits, batch_size for the rollout KV cache, lora_rank or
 * resources.devices for weights and optimizer state).
 */
export function checkJobMemory(s: ModelShape, hp: Record<string, unknown>, devices: number, contextLength: number | null, deviceBytes: number): MemoryEstimate {
  const estimate = estimateJobMemory(s, hp, devices, contextLength);
  if (estimate.bytes <= deviceBytes) return estimate;
  const [largest] = Object.entries(estimate.parts).sort((a, b) => b[1] - a[1]);
  const lora = Number(hp.lora_rank ?? 0) > 0;
  const advice: Record<string, [string, string]> = {
    logits: ['hyperparameters.mini_batch_size', 'lower mini_batch_size (or max_response_tokens)'],
    activations: ['hyperparameters.mini_batch_size', 'lower mini_batch_size (or max_response_tokens)'],
    kv_cache: ['hyperparameters.batch_size', 'lower batch_size or group_size (or max_response_tokens)'],
    weights: lora ? ['model', 'choose a smaller model'] : ['hyperparameters.lora_rank', 'set lora_rank (e.g. 32) or raise resources.devices'],
    optimizer: lora ? ['hyperparameters.lora_rank', 'lower lora_rank'] : ['hyperparameters.lora_rank', 'set lora_rank (e.g. 32) or raise resources.devices'],
    reference: ['hyperparameters.kl_beta', 'set kl_beta to 0 or use LoRA (lora_rank > 0)'],
  };
  const [param, change] = advice[largest![0]]!;
  const detail = Object.entries(estimate.parts)
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${gib(v)}`)
    .join(', ');
  throw new ApiError(
    400,
    `${param}: the job needs an estimated ${gib(estimate.bytes)} per device (${detail}, x${M.overhead_factor} overhead) but the workers' ` +
      `devices have ${gib(deviceBytes)}; ${change}`,
    { param, code: 'job_too_large' },
  );
}

/** The job-creation check on a base model: its config.json from the blob store (skipped when absent or not a
 * Qwen2 / Llama shape), its manifest's context length, the deployment's device memory. */
export async function checkBaseModelMemory(
  deps: Deps,
  base: BaseModel,
  hyperparameters: Record<string, unknown>,
  devices: number,
): Promise<MemoryEstimate | null> {
  const blob = await deps.blobs.get(`${base.blobPrefix}config.json`);
  if (!blob) return null;
  let config: unknown;
  try {
    config = JSON.parse(await new Response(blob.body).text());
  } catch {
    return null;
  }
  const shape = config && typeof config === 'object' ? modelShape(config as Record<string, unknown>) : null;
  if (!shape) return null;
  const context = typeof base.manifest.context_length === 'number' ? base.manifest.context_length : null;
  return checkJobMemory(shape, hyperparameters, devices, context, deps.config.workerDeviceMemoryBytes ?? DEFAULT_WORKER_DEVICE_MEMORY_BYTES);
}
