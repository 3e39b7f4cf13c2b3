/**
 * `reason --stream` for people: the text as it arrives. One sample: its thinking, then its answer, written as the
 * deltas come (no line buffering), then how it finished. Several samples: their deltas interleave, so each sample's
 * text is printed line by line as lines complete (empty lines left out), prefixed with the sample index and the
 * phase. Then the vote.
 */
import type { ReasonStreamChunk } from '../sdk/typescript';

export interface StreamOutput {
  out: (line: string) => void; // a whole line
  write?: (text: string) => void; // text without a newline (a terminal); absent: line by line for one sample too
}

type Phase = 'thinking' | 'answer';

export class ReasonStreamPrinter {
  private readonly pending = new Map<number, { phase: Phase; text: string }>();
  private inline: { phase: Phase | null; atLineStart: boolean } = { phase: null, atLineStart: true };

  constructor(
    private readonly io: StreamOutput,
    private readonly samples: number,
  ) {}

  private get live(): boolean {
    return this.samples === 1 && this.io.write !== undefined;
  }

  chunk(chunk: ReasonStreamChunk): void {
    if (chunk.object === 'reason.vote') {
      const a = chunk.aggregate;
      this.io.out(`answer: ${a.answer ?? '-'}  (${a.votes}/${a.samples} votes, seed ${chunk.seed}, ${chunk.usage.total_tokens} tokens)`);
      return;
    }
    for (const c of chunk.choices) {
      if (c.delta.reasoning) this.text(c.index, 'thinking', c.delta.reasoning);
      if (c.delta.content) this.text(c.index, 'answer', c.delta.content);
      if (c.finish_reason) {
        this.flush(c.index);
        const how = c.thinking_end ? `, thinking ended: ${c.thinking_end}` : '';
        this.io.out(`[${c.index}] done: ${c.finish_reason}${how}, extracted ${c.extracted_answer ?? '-'}`);
      }
    }
  }

  private text(index: number, phase: Phase, text: string): void {
    if (this.live) {
      const write = this.io.write!;
      if (this.inline.phase !== phase) {
        text = text.replace(/^\n+/, ''); // the answer starts on the line after </think>: the label says so already
        if (text === '') return;
        if (!this.inline.atLineStart) write('\n');
        write(phase === 'thinking' ? 'thinking: ' : 'answer: ');
        this.inline.phase = phase;
      }
      write(text);
      this.inline.atLineStart = text.endsWith('\n');
      return;
    }
    const p = this.pending.get(index);
    if (p && p.phase !== phase) this.flush(index);
    const cur = this.pending.get(index) ?? { phase, text: '' };
    cur.text += text;
    const lines = cur.text.split('\n');
    cur.text = lines.pop()!;
    for (const line of lines) this.line(index, phase, line);
    this.pending.set(index, cur);
  }

  private line(index: number, phase: Phase, line: string): void {
    if (line === '') return;
    this.io.out(`[${index}] ${phase === 'thinking' ? 'thinking' : 'answer  '}| ${line}`);
  }

  private flush(index: number): void {
    if (this.live) {
      if (!this.inline.atLineStart) this.io.write!('\n');
      this.inline = { phase: null, atLineStart: true };
      return;
    }
    const p = this.pending.get(index);
    if (p && p.text !== '') this.line(index, p.phase, p.text);
    this.pending.delete(index);
  }
}
