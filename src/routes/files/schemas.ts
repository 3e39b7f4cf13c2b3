/** Zod schemas of the files resource (derived from the `files` table). */
import { z } from '@hono/zod-openapi';
import { FILE_PURPOSES, type FileRow } from '../../db/schema';
import { seconds } from '../common';
import { listOf } from '../common';

export const FileObject = z
  .object({
    id: z.string().openapi({ example: 'file-01jd0s2x8v9k7m3n4p5q6r7s8t' }),
    object: z.literal('file'),
    bytes: z.number().int(),
    created_at: z.number().int().openapi({ description: 'Unix seconds.' }),
    filename: z.string(),
    purpose: z.enum(FILE_PURPOSES),
    status: z.literal('processed'),
    examples: z.number().int().openapi({ description: 'Number of examples (non-blank lines).' }),
    sha256: z.string(),
  })
  .openapi('File');

export const FileList = listOf(FileObject, 'FileList');

export const FileIdParam = z.object({
  file_id: z.string().max(128).openapi({ param: { name: 'file_id', in: 'path' } }),
});

export const DeletedFile = z
  .object({ id: z.string(), object: z.literal('file'), deleted: z.literal(true) })
  .openapi('DeletedFile');

export function toFileObject(row: FileRow): z.infer<typeof FileObject> {
  return {
    id: row.id,
    object: 'file',
    bytes: row.bytes,
    created_at: seconds(row.createdAt),
    filename: row.filename,
    purpose: row.purpose,
    status: 'processed',
    examples: row.examples,
    sha256: row.sha256,
  };
}
