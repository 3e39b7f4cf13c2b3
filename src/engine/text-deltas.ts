/**
 * Incremental text of a growing token list for streaming. Decoding the whole list each time keeps multi-token
 * characters intact; a delta is released only once the decoded text extends what was already sent and does not
 * end in a replacement character (an incomplete UTF-8 sequence that the next token completes).
 */
export class TextDeltas {
  private sent = "";

  constructor(private readonly decode: (ids: number[]) => string = () => "") {}

  /** The new text since the last call, or "" when nothing can be released yet. */
  next(ids: number[], final = false): string {
    return this.nextText(this.decode(ids), final);
  }

  /** The same for text decoded by the caller (an answer held back before a possible stop string). */
  nextText(text: string, final = false): string {
    if (!text.startsWith(this.sent) || (!final && text.endsWith("\uFFFD"))) return "";
    const delta = text.slice(this.sent.length);
    this.sent = text;
    return delta;
  }
}
