/**
 * Chat tokenizer of a model folder: tokenizer.json through @huggingface/tokenizers, the tokenizer_config.json
 * `chat_template` through @huggingface/jinja (which renders with trim_blocks / lstrip_blocks like transformers).
 * Mirrors gpu-worker/src/softgrpo/tokenizer.py: the generation prompt ends with `<think>\n` (appended when a
 * template does not open the thinking block itself), nothing is added around encoded text. A model whose thinking
 * markers are other tokens names them in tokenizer_config.json as `think_start` / `think_end` (model import writes
 * them, docs/MODELS.md).
 * Runtime-free (the Workers build tokenizes training prompts at job creation): the Node engines read the files
 * with `loadChatTokenizer` (./model-folder.ts), job creation from the blob store.
 */
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { byteLevelBytes } from "./byte-level";
import type { ChatMessage } from "./types";

export const THINK_START = "<think>";
export const THINK_END = "</think>";

type TokenField = string | { content?: string } | null | undefined;

function tokenText(value: TokenField): string | null {
  if (value && typeof value === "object") return value.content ?? null;
  return value ?? null;
}

function chatTemplateSource(config: Record<string, unknown>): string {
  const template = config.chat_template;
  if (Array.isArray(template)) {
    const named = template as Array<{ name: string; template: string }>;
    return (named.find((t) => t.name === "default") ?? named[0]).template;
  }
  if (typeof template !== "string" || template === "") throw new Error("tokenizer_config.json: missing chat_template");
  return template;
}

export class ChatTokenizer {
  readonly eosToken: string;
  readonly eosId: number;
  readonly thinkStartId: number;
  readonly thinkEndId: number;
  /** The thinking markers: `<think>` / `</think>` unless tokenizer_config.json names others. */
  readonly thinkStart: string;
  readonly thinkEnd: string;
  private readonly bosToken: string;
  private readonly template: Template;
  private readonly specialIds: Set<number>;
  private readonly byteLevel: boolean;

  constructor(
    private readonly tokenizer: Tokenizer,
    config: Record<string, unknown>,
  ) {
    this.template = new Template(chatTemplateSource(config));
    const eos = tokenText(config.eos_token as TokenField);
    if (!eos) throw new Error("tokenizer_config.json: missing eos_token");
    this.eosToken = eos;
    this.bosToken = tokenText(config.bos_token as TokenField) ?? "";
    this.eosId = this.tokenId(eos);
    this.thinkStart = tokenText(config.think_start as TokenField) ?? THINK_START;
    this.thinkEnd = tokenText(config.think_end as TokenField) ?? THINK_END;
    this.thinkStartId = this.tokenId(this.thinkStart);
    this.thinkEndId = this.tokenId(this.thinkEnd);
    this.specialIds = new Set(tokenizer.get_added_tokens_decoder().keys());
    const decoder = tokenizer.decoder?.config as { type?: string; decoders?: Array<{ type?: string }> } | undefined;
    this.byteLevel = decoder?.type === "ByteLevel" || (decoder?.decoders ?? []).some((d) => d.type === "ByteLevel");
  }

  /** From the parsed tokenizer.json and tokenizer_config.json of a model folder. */
  static fromJson(tokenizerJson: Record<string, unknown>, config: Record<string, unknown>): ChatTokenizer {
    return new ChatTokenizer(new Tokenizer(tokenizerJson, config), config);
  }

  /** Id of a single token; throws when the vocabulary lacks it. */
  tokenId(token: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw new Error(`tokenizer.json: no single token ${JSON.stringify(token)} in the vocabulary`);
    return id;
  }

  /** The chat template text; with the generation prompt it ends with `<think>\n`. */
  renderChat(messages: ChatMessage[], addGenerationPrompt = true): string {
    let text = this.template.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.bosToken,
      eos_token: this.eosToken,
    });
    if (addGenerationPrompt && !text.endsWith(`${this.thinkStart}\n`)) text += `${this.thinkStart}\n`;
    return text;
  }

  /** Plain text -> ids; special tokens written in the text are recognised, nothing is added. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  encodeChat(messages: ChatMessage[]): number[] {
    return this.encode(this.renderChat(messages));
  }

  /**
   * The bytes one generated token stands for (logprobs): a byte-level piece mapped back exactly, an added token as
   * its UTF-8 text, any other token as the UTF-8 of its decoded text.
   */
  tokenBytes(id: number): number[] {
    const piece = this.tokenizer.id_to_token(id) ?? "";
    const exact = this.specialIds.has(id) ? null : this.byteLevel ? byteLevelBytes(piece) : null;
    return exact ?? [...new TextEncoder().encode(this.specialIds.has(id) ? piece : this.tokenizer.decode([id]))];
  }

  /** Text of generated ids without special tokens (think tags, eos). */
  decode(ids: number[]): string {
    const text = ids.filter((id) => !this.specialIds.has(id));
    return text.length === 0 ? "" : this.tokenizer.decode(text, { skip_special_tokens: true });
  }
}
