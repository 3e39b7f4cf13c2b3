/**
 * Stop strings of the answer phase (GenerationRequest.stop): where an answer is cut, and how much of a growing
 * answer a stream may release while a stop string could still be completing. Mirrored by `cut_at_stop` in
 * gpu-worker/src/softgrpo/serve.py (the remote engine), so both engines end a sample at the same token.
 */
export class StopStrings {
  constructor(readonly strings: readonly string[]) {}

  /** Index of the earliest occurrence of any stop string in `text`, or -1. */
  cutIndex(text: string): number {
    let best = -1;
    for (const s of this.strings) {
      const at = text.indexOf(s);
      if (at >= 0 && (best < 0 || at < best)) best = at;
    }
    return best;
  }

  /**
   * Length of the prefix of `text` that no continuation can make part of a stop string: all of it but its longest
   * suffix that begins a stop string ("Answer: 4\n\n" with stop "\n\nQ" holds back the final "\n\n").
   */
  releasable(text: string): number {
    let held = 0;
    for (const s of this.strings) {
      for (let n = Math.min(s.length - 1, text.length); n > held; n--) {
        if (text.endsWith(s.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return text.length - held;
  }
}
