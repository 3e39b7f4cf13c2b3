/** `/v1/files`: upload, list, retrieve, download and delete JSONL datasets (tenant-scoped). */
import { createRoute, z } from '@hono/zod-openapi';
import { and, desc, eq, inArray, lt, or } from 'drizzle-orm';
import { files, jobs } from '../../db/schema';
import { ApiError, errorResponses, notFound } from '../../errors';
import { DEFAULT_LIMITS } from '../../ports';
import { createRouter } from '../../router';
import { IdempotencyHeaders, ListQuery, bearerSecurity, page, requireCursor } from '../common';
import { DeletedFile, FileIdParam, FileList, FileObject, toFileObject } from './schemas';
import { RAW_UPLOAD_TYPES, uploadFile } from './upload';

export const filesRouter = createRouter();

/** RFC 6266: an ASCII fallback plus the exact UTF-8 name (headers cannot carry raw non-Latin-1 text). */
function contentDisposition(filename: string) {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

const jsonlLimits = `At most ${DEFAULT_LIMITS.maxFileBytes} bytes per file and ${DEFAULT_LIMITS.maxLineBytes} bytes per line (deployment defaults).`;

filesRouter.openapi(
  createRoute({
    method: 'post',
    path: '/',
    tags: ['Files'],
    summary: 'Upload a JSONL dataset',
    description:
      'Each line is `{"prompt": str}` or `{"messages": [{"role", "content"}...]}` plus `"answer": str | number`; ' +
      'other keys are kept for graders. The upload is validated while it streams; the first bad line answers 400 ' +
      `naming the line number and field, and nothing is stored. ${jsonlLimits} ` +
      'Send multipart/form-data with fields `purpose` and `file`, or the raw JSONL as the body with `?purpose=fine-tune&filename=...`.',
    security: bearerSecurity,
    request: {
      headers: IdempotencyHeaders,
      query: z.object({
        purpose: z.string().optional().openapi({ description: 'Raw uploads only: must be "fine-tune".' }),
        filename: z.string().optional().openapi({ description: 'Raw uploads only.' }),
      }),
      body: {
        required: true,
        content: {
          // Plain JSON Schema (not zod) on purpose: the handler streams the body instead of a buffering validator.
          'multipart/form-data': {
            schema: {
              type: 'object',
              required: ['purpose', 'file'],
              properties: {
                purpose: { type: 'string', enum: ['fine-tune'] },
                file: { type: 'string', format: 'binary', maxLength: DEFAULT_LIMITS.maxFileBytes },
              },
            },
          },
          ...Object.fromEntries(RAW_UPLOAD_TYPES.map((t) => [t, { schema: { type: 'string' as const, format: 'binary' } }])),
        },
      },
    },
    responses: {
      200: { description: 'The stored file', content: { 'application/json': { schema: FileObject } } },
      ...errorResponses(400, 401, 409, 413, 415),
    },
  }),
  async (c) => {
    const row = await uploadFile(c);
    // null: an idempotency probe; the middleware replaces this answer with the stored one (or a 409).
    if (!row) return c.body(null, 204) as never;
    return c.json(toFileObject(row), 200);
  },
);

filesRouter.openapi(
  createRoute({
    method: 'get',
    path: '/',
    tags: ['Files'],
    summary: 'List files (newest first)',
    security: bearerSecurity,
    request: { query: ListQuery },
    responses: {
      200: { description: 'A page of files', content: { 'application/json': { schema: FileList } } },
      ...errorResponses(400, 401),
    },
  }),
  async (c) => {
    const { after, limit } = c.req.valid('query');
    const tenantId = c.get('tenantId');
    const { db } = c.get('deps').database;
    await requireCursor(db, files, files.id, eq(files.tenantId, tenantId), after);
    const rows = await db
      .select()
      .from(files)
      .where(and(eq(files.tenantId, tenantId), after ? lt(files.id, after) : undefined))
      .orderBy(desc(files.id))
      .limit(limit + 1);
    return c.json(page(rows.map(toFileObject), limit), 200);
  },
);

filesRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{file_id}',
    tags: ['Files'],
    summary: 'Retrieve a file',
    security: bearerSecurity,
    request: { params: FileIdParam },
    responses: {
      200: { description: 'The file', content: { 'application/json': { schema: FileObject } } },
      ...errorResponses(401, 404),
    },
  }),
  async (c) => {
    const { file_id } = c.req.valid('param');
    const row = await c
      .get('deps')
      .database.db.select()
      .from(files)
      .where(and(eq(files.id, file_id), eq(files.tenantId, c.get('tenantId'))))
      .get();
    if (!row) throw notFound('file', file_id, 'file_id');
    return c.json(toFileObject(row), 200);
  },
);

filesRouter.openapi(
  createRoute({
    method: 'get',
    path: '/{file_id}/content',
    tags: ['Files'],
    summary: 'Download the file content (JSONL; a job\'s result file is CSV)',
    security: bearerSecurity,
    request: { params: FileIdParam },
    responses: {
      200: {
        description: 'The content: JSONL for an uploaded dataset, CSV for a job\'s result file (purpose fine-tune-results)',
        content: { 'application/jsonl': { schema: { type: 'string' } }, 'text/csv': { schema: { type: 'string' } } },
      },
      ...errorResponses(401, 404),
    },
  }),
  async (c) => {
    const { file_id } = c.req.valid('param');
    const deps = c.get('deps');
    const row = await deps.database.db
      .select()
      .from(files)
      .where(and(eq(files.id, file_id), eq(files.tenantId, c.get('tenantId'))))
      .get();
    if (!row) throw notFound('file', file_id, 'file_id');
    const blob = await deps.blobs.get(row.blobKey);
    if (!blob) throw new ApiError(404, `The content of file '${file_id}' is missing.`, { code: 'file_content_missing' });
    // A raw stream: the route's typed responses only know JSON bodies.
    return new Response(blob.body, {
      status: 200,
      headers: {
        'content-type': row.purpose === 'fine-tune-results' ? 'text/csv' : 'application/jsonl',
        'content-length': String(blob.size),
        'content-disposition': contentDisposition(row.filename),
      },
    }) as never;
  },
);

filesRouter.openapi(
  createRoute({
    method: 'delete',
    path: '/{file_id}',
    tags: ['Files'],
    summary: 'Delete a file',
    description: 'Refused (409) while a job that is not finished uses the file.',
    security: bearerSecurity,
    request: { params: FileIdParam },
    responses: {
      200: { description: 'Deleted', content: { 'application/json': { schema: DeletedFile } } },
      ...errorResponses(401, 404, 409),
    },
  }),
  async (c) => {
    const { file_id } = c.req.valid('param');
    const deps = c.get('deps');
    const { db } = deps.database;
    const tenantId = c.get('tenantId');
    const active = await db
      .select({ id: jobs.id })
      .from(jobs)
      .where(
        and(
          eq(jobs.tenantId, tenantId),
          or(eq(jobs.trainingFile, file_id), eq(jobs.validationFile, file_id)),
          inArray(jobs.status, ['validating_files', 'queued', 'running', 'pausing', 'paused']),
        ),
      )
      .get();
    if (active)
      throw new ApiError(409, `File '${file_id}' is used by job '${active.id}', which has not finished.`, {
        code: 'file_in_use',
        param: 'file_id',
      });
    const [row] = await db
      .delete(files)
      .where(and(eq(files.id, file_id), eq(files.tenantId, tenantId)))
      .returning();
    if (!row) throw notFound('file', file_id, 'file_id');
    await deps.blobs.delete(row.blobKey);
    return c.json({ id: row.id, object: 'file' as const, deleted: true as const }, 200);
  },
);
