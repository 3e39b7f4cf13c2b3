/**
 * Thinking markers named in tokenizer_config.json (`think_start` / `think_end`, written by model import for models
 * whose markers are not <think> / </think>) are the ones the engine opens and closes thinking with (issue 17).
 * The bundled tiny model's real tokenizer; its other special tokens stand in for a model's own markers.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ChatTokenizer } from '../../src/engine/tokenizer';

const read = (name: string) => JSON.parse(readFileSync(new URL(`../../models/tiny/${name}`, import.meta.url), 'utf8'));

describe('thinking markers', () => {
  it('defaults_to_think_tags', () => {
    const tok = ChatTokenizer.fromJson(read('tokenizer.json'), read('tokenizer_config.json'));
    expect([tok.thinkStart, tok.thinkEnd]).toEqual(['<think>', '</think>']);
    expect(tok.thinkStartId).toBe(tok.tokenId('<think>'));
    expect(tok.renderChat([{ role: 'user', content: '1+1?' }])).toMatch(/<\|im_start\|>assistant\n<think>\n$/);
  });

  it('uses_the_markers_tokenizer_config_names', () => {
    const config = { ...read('tokenizer_config.json'), think_start: '<|endoftext|>', think_end: '<|im_start|>' };
    config.chat_template = config.chat_template.replace("<think>\\n", '');
    const tok = ChatTokenizer.fromJson(read('tokenizer.json'), config);
    expect([tok.thinkStartId, tok.thinkEndId]).toEqual([tok.tokenId('<|endoftext|>'), tok.tokenId('<|im_start|>')]);
    expect(tok.renderChat([{ role: 'user', content: '1+1?' }])).toMatch(/assistant\n<\|endoftext\|>\n$/);
  });

  it('names_a_marker_missing_from_the_vocabulary', () => {
    const config = { ...read('tokenizer_config.json'), think_start: '<reasoning>', think_end: '</reasoning>' };
    expect(() => ChatTokenizer.fromJson(read('tokenizer.json'), config)).toThrow('tokenizer.json: no single token "<reasoning>" in the vocabulary');
  });
});
