/** Server-sent events of a response body as an async iterator of messages (eventsource-parser does the framing). */
import { createParser, type EventSourceMessage } from 'eventsource-parser';

export type { EventSourceMessage };

export async function* sseMessages(body: ReadableStream<Uint8Array>): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (m) => queue.push(m) });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      while (queue.length) yield queue.shift()!;
    }
    while (queue.length) yield queue.shift()!;
  } finally {
    // The consumer stopped early (break / return): close the connection.
    await reader.cancel().catch(() => undefined);
  }
}
