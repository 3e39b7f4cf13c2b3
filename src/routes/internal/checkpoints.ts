/**
 * Checkpoint transfer for workers: signed PUT URLs for a step's files, then registration once every blob exists
 * with the declared size and SHA-256 (a checkpoint is written before it is registered, so a crash never leaves a
 * registered checkpoint with missing files). Registering the same step twice with the same files is a no-op.
 */
import { createRoute, z } from '@hono/zod-openapi';
import { checksumHeaders } from '../../adapters/signed-urls';
import { ApiError, errorResponses } from '../../errors';
import { checkpointKey, checkpointPrefix } from '../../jobs/checkpoint-uploads';
import { registerCheckpoint } from '../../jobs/lifecycle';
import { CheckpointObject, toCheckpointObject } from '../../jobs/objects';
import { requireLease } from '../../jobs/store';
import { LEASED_STATUSES } from '../../jobs/transitions';
import { createRouter } from '../../router';
import { IdempotencyHeaders, JobIdParam, originOf, seconds, workerSecurity } from '../common';
import { RegisterCheckpointBody, UploadUrlsBody, UploadUrlsResponse } from './schemas';

export const internalCheckpointsRouter = createRouter();
const tags = ['Worker protocol'];
const json = <T>(schema: T) => ({ 'application/json': { schema } });

internalCheckpointsRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/checkpoints/uploads',
    tags,
    summary: 'Signed PUT URLs for the files of a checkpoint',
    description:
      "PUT each file's bytes to its URL (no bearer token) with the file's `headers` (its SHA-256: the store refuses " +
      'other content), then register the checkpoint.',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(UploadUrlsBody) } },
    responses: {
      200: { description: 'One URL per file', content: json(UploadUrlsResponse) },
      ...errorResponses(400, 401, 403, 404, 409, 415),
    },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { job_id } = c.req.valid('param');
    const body = c.req.valid('json');
    const job = await requireLease(deps.database.db, job_id, body.lease_token, LEASED_STATUSES);
    const tooBig = body.files.findIndex((f) => f.bytes > deps.config.limits.maxBlobBytes);
    if (tooBig !== -1)
      throw new ApiError(413, `files[${tooBig}].bytes: larger than ${deps.config.limits.maxBlobBytes}`, { param: `files[${tooBig}].bytes` });
    const expiresAt = deps.clock.now() + deps.config.signedUrlSeconds * 1000;
    const origin = originOf(c.req.url);
    // Signed with each file's sha256: the store verifies the content, and registration reads the hash back.
    const urls = await Promise.all(
      body.files.map(async (f) => ({
        name: f.name,
        method: 'PUT' as const,
        url: await deps.blobUrls.sign({
          key: checkpointKey(job_id, body.step, job.attempts, f.name),
          method: 'PUT',
          expiresAt,
          origin,
          sha256: f.sha256,
        }),
        headers: checksumHeaders(f.sha256),
      })),
    );
    return c.json({ step: body.step, expires_at: seconds(expiresAt), files: urls }, 200);
  },
);

internalCheckpointsRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/{job_id}/checkpoints',
    tags,
    summary: 'Register a checkpoint whose files are uploaded',
    description:
      'Verifies that each file exists with the given size and SHA-256 (400 naming `files[i]` otherwise). ' +
      'The checkpoint becomes the model `ft:<base>:<suffix>:<job_id>:ckpt-<step>` and the resume point.',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, params: JobIdParam, body: { required: true, content: json(RegisterCheckpointBody) } },
    responses: {
      200: { description: 'The checkpoint', content: json(CheckpointObject) },
      ...errorResponses(400, 401, 403, 404, 409, 415),
    },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const { job_id } = c.req.valid('param');
    const body = c.req.valid('json');
    const job = await requireLease(db, job_id, body.lease_token, LEASED_STATUSES);
    for (const [i, f] of body.files.entries()) {
      const info = await deps.blobs.head(checkpointKey(job_id, body.step, job.attempts, f.name));
      const param = `files[${i}]`;
      if (!info) throw new ApiError(400, `${param}: "${f.name}" was not uploaded`, { param, code: 'blob_missing' });
      if (info.size !== f.bytes)
        throw new ApiError(400, `${param}: "${f.name}" has ${info.size} bytes, not ${f.bytes}`, { param, code: 'blob_size_mismatch' });
      if (info.sha256 !== f.sha256)
        throw new ApiError(400, `${param}: "${f.name}" has sha256 ${info.sha256}, not ${f.sha256}`, { param, code: 'blob_sha256_mismatch' });
    }
    const { created, row } = await registerCheckpoint(deps, job, body.lease_token, {
      id: deps.ids.next('ftckpt'),
      step: body.step,
      metrics: body.metrics,
      files: body.files,
      blobPrefix: checkpointPrefix(job_id, body.step, job.attempts),
    });
    if (!created && JSON.stringify(row.files) !== JSON.stringify(body.files))
      throw new ApiError(409, `Step ${body.step} already has a checkpoint with other files.`, { code: 'checkpoint_exists', param: 'step' });
    return c.json(toCheckpointObject(job, row), 200);
  },
);

export type RegisteredCheckpoint = z.infer<typeof CheckpointObject>;
