/**
 * Chat messages as OpenAI clients write them, for /v1/reason and /v1/chat/completions: the roles system, developer
 * (OpenAI's newer name for system instructions: given to the model as a system message), user and assistant;
 * content a string or an array of text parts (`[{type: "text", text}]`, joined with "\n" as vLLM does). Other part
 * types (image_url, input_audio, file) are a 400 naming `messages[i].content[j].type`; tool messages and tool calls
 * are not part of the schema (400 naming the role or the field). `name` is accepted and not shown to the model.
 */
import { z } from '@hono/zod-openapi';
import type { ChatMessage as EngineMessage } from '../engine/types';

const MAX_CONTENT = 200_000;

const ContentPart = z
  .object({
    type: z.string().openapi({ description: 'Only "text" is supported.' }),
    text: z.string().max(MAX_CONTENT).optional(),
  })
  .loose() // an image part's image_url must not hide that its type is the problem
  .superRefine((part, ctx) => {
    if (part.type !== 'text') {
      ctx.addIssue({ code: 'custom', path: ['type'], message: `only text content parts are supported, got "${part.type.slice(0, 64)}"` });
    } else if (part.text === undefined) {
      ctx.addIssue({ code: 'custom', path: ['text'], message: 'is required' });
    }
  })
  .openapi('TextContentPart');

export const ChatMessage = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant']).openapi({ description: 'developer is treated as system.' }),
    content: z.union([z.string().max(MAX_CONTENT), z.array(ContentPart).min(1).max(256)]),
    name: z.string().max(256).optional().openapi({ description: 'Accepted for compatibility; not shown to the model.' }),
  })
  .strict()
  .openapi('ReasonMessage');
export type ChatMessage = z.infer<typeof ChatMessage>;

/** The engine's form: developer becomes system, text parts are joined. */
export function toEngineMessages(messages: ChatMessage[]): EngineMessage[] {
  return messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((part) => part.text ?? '').join('\n'),
  }));
}
