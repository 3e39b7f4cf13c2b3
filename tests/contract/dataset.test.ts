/**
 * contract/dataset.json against the shared case file tests/vectors/dataset-cases.json, which
 * gpu-worker/tests/test_contract_cases.py runs through softgrpo.data too: the upload validator (the stream of
 * src/contract/jsonl.ts) stops each case at the same line with the same problem code, or counts the same examples.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LineProblem } from '../../src/contract/dataset';
import { jsonlExamples, jsonlValidator } from '../../src/contract/jsonl';

interface Case {
  name: string;
  text?: string;
  hex?: string;
  examples?: number;
  error?: { line: number; code: string };
}
const file = JSON.parse(readFileSync(new URL('../vectors/dataset-cases.json', import.meta.url), 'utf8')) as { cases: Case[] };
const contract = JSON.parse(readFileSync(new URL('../../contract/dataset.json', import.meta.url), 'utf8')) as {
  problems: Record<string, string>;
};

const bytesOf = (c: Case) => (c.hex !== undefined ? Buffer.from(c.hex, 'hex') : new TextEncoder().encode(c.text!));

/** The case's bytes through the upload validator in chunks of `chunk` bytes: its example count, or its problem. */
async function validate(bytes: Uint8Array, chunk: number): Promise<number | LineProblem> {
  const v = jsonlValidator(1 << 20);
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < bytes.length; i += chunk) controller.enqueue(bytes.slice(i, i + chunk));
      controller.close();
    },
  });
  try {
    const reader = source.pipeThrough(v.stream).getReader();
    while (!(await reader.read()).done) {
      /* drain */
    }
    return v.state.examples;
  } catch (e) {
    if (e instanceof LineProblem) return e;
    throw e;
  }
}

describe('dataset cases', () => {
  it.each(file.cases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const bytes = bytesOf(c);
    for (const chunk of [bytes.length || 1, 7]) {
      const verdict = await validate(bytes, chunk);
      if (c.error) {
        expect(verdict, `accepted, but the case expects ${c.error.code}`).toBeInstanceOf(LineProblem);
        const p = verdict as LineProblem;
        expect({ line: p.line, code: p.code }, p.message).toEqual(c.error);
      } else {
        expect(verdict).toBe(c.examples);
      }
    }
  });

  it('reads_back_a_stored_file_with_its_line_numbers', async () => {
    const c = file.cases.find((x) => x.name === 'prompt_and_messages_with_extra_keys_and_a_blank_line')!;
    const lines = [];
    for await (const { line } of jsonlExamples(new Blob([bytesOf(c)]).stream(), 1 << 20)) lines.push(line);
    expect(lines).toEqual([1, 3]);
  });

  it('every_problem_of_the_contract_has_a_case', () => {
    const codes = new Set(file.cases.map((c) => c.error?.code));
    expect(Object.keys(contract.problems).filter((p) => !codes.has(p))).toEqual([]);
  });
});
