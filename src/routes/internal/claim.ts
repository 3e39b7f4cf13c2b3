/**
 * `POST /internal/jobs/claim`: a worker takes the next queued job (round-robin across tenants, then oldest first;
 * src/jobs/claim.ts) with a lease, plus signed download URLs for everything it needs (training/validation files,
 * the base model folder, the last checkpoint to resume from).
 */
import { findBaseModel } from '../../models/tenant-models';
import { createRoute } from '@hono/zod-openapi';
import { and, desc, eq, isNotNull, max } from 'drizzle-orm';
import { checkpoints, files, jobEvents } from '../../db/schema';
import { errorResponses } from '../../errors';
import { claimNextJob } from '../../jobs/claim';
import { failJob } from '../../jobs/lifecycle';
import { fineTunedModelName } from '../../models/names';
import { createRouter } from '../../router';
import { IdempotencyHeaders, originOf, seconds, workerSecurity } from '../common';
import { signedFiles } from './lease';
import { ClaimBody, ClaimResponse } from './schemas';

export const internalClaimRouter = createRouter();
/** Suggested polling interval of idle workers (the 204 answer's retry-after). */
const CLAIM_POLL_SECONDS = 5;
const tags = ['Worker protocol'];
const json = <T>(schema: T) => ({ 'application/json': { schema } });

internalClaimRouter.openapi(
  createRoute({
    method: 'post',
    path: '/jobs/claim',
    tags,
    summary: 'Claim the next queued job with a lease',
    description:
      'Fair across organizations: round-robin over the organizations with queued jobs (the one whose last claim is ' +
      'oldest goes first), then the oldest job of that organization. Atomic: one conditional UPDATE ... RETURNING ' +
      'takes the job, so two workers never get the same job. 204 when the queue is empty.',
    security: workerSecurity,
    request: { headers: IdempotencyHeaders, body: { required: true, content: json(ClaimBody) } },
    responses: {
      200: { description: 'A job with its lease and signed download URLs', content: json(ClaimResponse) },
      204: { description: 'No queued job; poll again after `retry-after` seconds' },
      ...errorResponses(400, 401, 403, 409, 415),
    },
  }),
  async (c) => {
    const deps = c.get('deps');
    const { db } = deps.database;
    const body = c.req.valid('json');
    const now = deps.clock.now();
    const token = deps.ids.secret(24);
    const leaseMs = deps.config.leaseSeconds * 1000;
    const job = await claimNextJob(deps.database, { now, leaseToken: token, leaseMs, workerId: body.worker_id, models: body.models, devices: body.devices });
    if (!job) return c.body(null, 204, { 'retry-after': String(CLAIM_POLL_SECONDS) });

    const [training, validation, last, seqRow] = await Promise.all([
      db.select().from(files).where(eq(files.id, job.trainingFile)).get(),
      job.validationFile ? db.select().from(files).where(eq(files.id, job.validationFile)).get() : undefined,
      db.select().from(checkpoints).where(eq(checkpoints.jobId, job.id)).orderBy(desc(checkpoints.step)).limit(1).get(),
      db
        .select({ seq: max(jobEvents.seq) })
        .from(jobEvents)
        .where(and(eq(jobEvents.jobId, job.id), isNotNull(jobEvents.seq)))
        .get(),
    ]);
    const base = await findBaseModel(deps, job.tenantId, job.model);
    const missing = !training ? 'training_file' : job.validationFile && !validation ? 'validation_file' : !base ? 'model' : null;
    if (missing) {
      // Deleted file or retired model: the job cannot run anywhere. Fail it and tell the worker nothing to do.
      const error = { code: `${missing}_missing`, message: `The job's ${missing} no longer exists.`, param: missing };
      await failJob(deps, job.id, token, error, false);
      return c.body(null, 204);
    }
    const origin = originOf(c.req.url);
    const expiresAt = now + deps.config.signedUrlSeconds * 1000;
    const fileEntry = async (f: NonNullable<typeof training>) =>
      (await signedFiles(deps, origin, expiresAt, [{ name: f.id, bytes: f.bytes, sha256: f.sha256, key: f.blobKey }]))[0];
    return c.json(
      {
        job: {
          id: job.id,
          model: job.model,
          method: { type: job.methodType, hyperparameters: job.hyperparameters },
          grader: job.grader,
          seed: job.seed,
          resources: { devices: job.devices },
          suffix: job.suffix,
          training_file: job.trainingFile,
          validation_file: job.validationFile,
          fine_tuned_model: fineTunedModelName(job),
        },
        lease: { token, expires_at: seconds(now + leaseMs), seconds: deps.config.leaseSeconds },
        attempt: job.attempts,
        max_attempts: job.maxAttempts,
        next_event_seq: seqRow?.seq == null ? 0 : seqRow.seq + 1,
        urls_expire_at: seconds(expiresAt),
        training_file: await fileEntry(training!),
        validation_file: validation ? await fileEntry(validation) : null,
        base_model: {
          id: base!.id,
          manifest: base!.manifest,
          files: await signedFiles(
            deps,
            origin,
            expiresAt,
            base!.files.map((f) => ({ ...f, key: `${base!.blobPrefix}${f.name}` })),
          ),
        },
        resume_from: last
          ? {
              checkpoint_id: last.id,
              step: last.step,
              files: await signedFiles(
                deps,
                origin,
                expiresAt,
                last.files.map((f) => ({ ...f, key: `${last.blobPrefix}${f.name}` })),
              ),
            }
          : null,
      },
      200,
    );
  },
);
