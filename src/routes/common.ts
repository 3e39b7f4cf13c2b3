/** Schemas and helpers shared by resource routers: list pagination, id params, the `list` envelope. */
import { z } from '@hono/zod-openapi';
import { DEFAULT_LIMITS } from '../ports';

export const ListQuery = z.object({
  after: z
    .string()
    .max(128)
    .optional()
    .openapi({ description: 'Cursor: the id of the last item of the previous page.' }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(DEFAULT_LIMITS.maxListLimit)
    .default(20)
    .openapi({ description: `Page size (1-${DEFAULT_LIMITS.maxListLimit}, default 20).` }),
});

export function listOf<T extends z.ZodTypeAny>(item: T, name: string) {
  return z
    .object({
      object: z.literal('list'),
      data: z.array(item),
      has_more: z.boolean(),
      first_id: z.string().nullable(),
      last_id: z.string().nullable(),
    })
    .openapi(name);
}

/** Builds the list envelope from `limit + 1` fetched rows. */
export function page<T extends { id: string }>(rows: T[], limit: number) {
  const data = rows.slice(0, limit);
  return {
    object: 'list' as const,
    data,
    has_more: rows.length > limit,
    first_id: data[0]?.id ?? null,
    last_id: data[data.length - 1]?.id ?? null,
  };
}

export const seconds = (ms: number) => Math.floor(ms / 1000);
export const secondsOrNull = (ms: number | null | undefined) => (ms == null ? null : Math.floor(ms / 1000));

/** The public origin of the request, for URLs handed back to clients (signed blob URLs). */
export const originOf = (url: string) => new URL(url).origin;

export const bearerSecurity = [{ bearerAuth: [] }];
export const workerSecurity = [{ workerToken: [] }];

/** Documents `Idempotency-Key` on POST routes (middleware/idempotency.ts enforces it). */
export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .openapi({
      description:
        'Retry safely: the same key with the same request returns the stored response (header idempotent-replayed: true); ' +
        'with a different request, 409. Keys are kept 24 hours per tenant.',
    }),
});
