/** Schemas and helpers shared by resource routers: list pagination, id params, the `list` envelope, regex patterns. */
import { z } from '@hono/zod-openapi';
import { and, eq, type SQL } from 'drizzle-orm';
import type { SQLiteColumn, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { MAX_PATTERN_LENGTH, MAX_PATTERN_SIZE, patternProblem } from '../engine/safe-regex';
import { ApiError } from '../errors';
import { DEFAULT_LIMITS, type Db } from '../ports';

export const ListQuery = z.object({
  after: z
    .string()
    .max(128)
    .optional()
    .openapi({ description: 'Cursor: the id of the last item of the previous page (400 `invalid_cursor` if it is not one).' }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(DEFAULT_LIMITS.maxListLimit)
    .default(20)
    .openapi({ description: `Page size (1-${DEFAULT_LIMITS.maxListLimit}, default 20).` }),
});

/** Every list route answers this for an `after` that names no item of the list (rather than the first page). */
export const unknownCursor = (after: string) =>
  new ApiError(400, `after: '${after.slice(0, 128)}' is not the id of an item of this list`, {
    code: 'invalid_cursor',
    param: 'after',
  });

/** Throws `unknownCursor` unless `after` is the id of a row of `table` within `scope` (the list's own rows). */
export async function requireCursor(db: Db, table: SQLiteTable, id: SQLiteColumn, scope: SQL | undefined, after: string | undefined) {
  if (after === undefined) return;
  const row = await db.select({ id }).from(table).where(and(eq(id, after), scope)).get();
  if (!row) throw unknownCursor(after);
}

export const JobIdParam = z.object({
  job_id: z.string().max(128).openapi({ param: { name: 'job_id', in: 'path' } }),
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

/**
 * A user-supplied regular expression (vote extraction, the regex grader) in the dialect of src/engine/safe-regex.ts
 * (docs/CONTRACTS.md "Regex patterns"); a pattern outside it is a 400 naming the field.
 */
export const regexPattern = (use: string) =>
  z
    .string()
    .min(1)
    .superRefine((pattern, ctx) => {
      const problem = patternProblem(pattern);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .openapi({
      maxLength: MAX_PATTERN_LENGTH,
      description:
        `${use} RE2 syntax (github.com/google/re2/wiki/Syntax), matched in time linear in the text: no ` +
        `backreferences or lookarounds; \\d \\w \\s \\b are ASCII and $ matches only at the end of the text ` +
        `(use (?m) for lines). At most ${MAX_PATTERN_LENGTH} characters and size ${MAX_PATTERN_SIZE} (each ` +
        `character counts 1, a Unicode class such as \\p{L} 100, and x{n} counts x n times); Unicode classes ` +
        `are the general categories and scripts RE2 knows; no \\C; group names use A-Z a-z 0-9 _ and are unique.`,
    });
