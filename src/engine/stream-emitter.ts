/**
 * Turns decoder progress into delta and sample_done events (GenerationHooks.onEvent). The answer is released as the
 * decoder shows it (held back while a stop string may be completing); each answer delta carries the logprobs that
 * arrived since the last. Used by both decoding paths of the ONNX engine: a request decoded alone
 * (OnnxEngine.generateAlone) and the continuous batch (./batch-scheduler.ts), so their events are the same.
 */
import type { SampleDecoder } from "./sample-decoder";
import { TextDeltas } from "./text-deltas";
import type { ChatTokenizer } from "./tokenizer";
import type { GenerationHooks } from "./types";

export class StreamEmitter {
  private readonly reasoning = new Map<number, TextDeltas>();
  private readonly answer = new Map<number, TextDeltas>();
  private readonly logprobsSent = new Map<number, number>();

  constructor(
    decoders: SampleDecoder[],
    private readonly tokenizer: ChatTokenizer,
    private readonly emit: NonNullable<GenerationHooks["onEvent"]>,
  ) {
    const decode = (ids: number[]) => tokenizer.decode(ids);
    for (const d of decoders) {
      this.reasoning.set(d.sample, new TextDeltas(decode));
      this.answer.set(d.sample, new TextDeltas());
      this.logprobsSent.set(d.sample, 0);
    }
  }

  /** The events of one decode step of these decoders (the ones that advanced), in their order. */
  afterStep(decoders: SampleDecoder[]): void {
    for (const d of decoders) {
      const reasoning = this.reasoning.get(d.sample)!.next(d.reasoningIds, d.phase !== "thinking");
      if (reasoning) this.emit({ type: "delta", sample: d.sample, phase: "reasoning", text: reasoning });
      const answer = this.answer.get(d.sample)!.nextText(d.visibleAnswer(), d.done);
      const sent = this.logprobsSent.get(d.sample)!;
      const withLogprobs = d.answerLogprobs.length > sent && (answer !== "" || d.done);
      if (answer || withLogprobs) {
        const logprobs = withLogprobs ? { logprobs: d.logprobsFrom(sent) } : {};
        this.logprobsSent.set(d.sample, d.answerLogprobs.length);
        this.emit({ type: "delta", sample: d.sample, phase: "answer", text: answer, ...logprobs });
      }
      if (d.done) this.emit({ type: "sample_done", sample: d.toResult((ids) => this.tokenizer.decode(ids)) });
    }
  }
}
