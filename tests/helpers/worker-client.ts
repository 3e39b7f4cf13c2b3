/**
 * A GPU worker's side of the /internal protocol (docs/CONTRACTS.md "Worker protocol"), for tests: real HTTP calls
 * (or app.request), real signed-URL downloads and uploads, real SHA-256s. No shortcut into the database.
 */
import { createHash } from 'node:crypto';
import type { Fetch } from './http';

export interface Claim {
  job: { id: string; model: string; method: { type: string; hyperparameters: Record<string, unknown> }; seed: number; fine_tuned_model: string };
  lease: { token: string; expires_at: number; seconds: number };
  attempt: number;
  max_attempts: number;
  next_event_seq: number;
  training_file: { name: string; bytes: number; sha256: string; url: string };
  validation_file: { name: string; bytes: number; sha256: string; url: string } | null;
  base_model: { id: string; manifest: Record<string, unknown>; files: { name: string; bytes: number; sha256: string; url: string }[] };
  resume_from: { checkpoint_id: string; step: number; files: { name: string; bytes: number; sha256: string; url: string }[] } | null;
}

export const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

export class TestWorker {
  constructor(
    private fetch: Fetch,
    private token: string,
    readonly id = 'test-worker',
    private base = 'http://localhost',
  ) {}

  raw(path: string, body: unknown, extra: Record<string, string> = {}) {
    return this.fetch(`${this.base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json', ...extra },
      body: JSON.stringify(body),
    });
  }

  private async ok<T>(res: Response): Promise<T> {
    if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async claim(models?: string[]): Promise<Claim | null> {
    const res = await this.raw('/internal/jobs/claim', { worker_id: this.id, ...(models ? { models } : {}) });
    if (res.status === 204) return null;
    return this.ok<Claim>(res);
  }

  heartbeat(jobId: string, lease: string, trained_steps?: number) {
    return this.raw(`/internal/jobs/${jobId}/heartbeat`, { lease_token: lease, ...(trained_steps === undefined ? {} : { trained_steps }) });
  }

  events(jobId: string, lease: string, events: { seq: number; message: string; type?: string; data?: Record<string, unknown> }[]) {
    return this.raw(`/internal/jobs/${jobId}/events`, { lease_token: lease, events });
  }

  async download(url: string): Promise<Uint8Array> {
    const res = await this.fetch(url);
    if (!res.ok) throw new Error(`download ${res.status} ${await res.text()}`);
    return new Uint8Array(await res.arrayBuffer());
  }

  /** Uploads the files through signed PUT URLs, then registers the checkpoint. Returns the register response. */
  async checkpoint(jobId: string, lease: string, step: number, files: Record<string, string | Uint8Array>, metrics: Record<string, number> = {}) {
    const specs = Object.entries(files).map(([name, content]) => {
      const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
      return { name, bytes: bytes.length, sha256: sha256(bytes), content: bytes };
    });
    const urls = await this.ok<{ files: { name: string; url: string }[] }>(
      await this.raw(`/internal/jobs/${jobId}/checkpoints/uploads`, {
        lease_token: lease,
        step,
        files: specs.map(({ content: _c, ...s }) => s),
      }),
    );
    for (const u of urls.files) {
      const spec = specs.find((s) => s.name === u.name)!;
      const put = await this.fetch(u.url, { method: 'PUT', body: spec.content as BodyInit });
      if (!put.ok) throw new Error(`PUT ${put.status} ${await put.text()}`);
    }
    return this.raw(`/internal/jobs/${jobId}/checkpoints`, {
      lease_token: lease,
      step,
      files: specs.map(({ content: _c, ...s }) => s),
      metrics,
    });
  }

  finish(jobId: string, lease: string) {
    return this.raw(`/internal/jobs/${jobId}/finish`, { lease_token: lease });
  }

  fail(jobId: string, lease: string, error: { code: string; message: string; param?: string }, retryable = false) {
    return this.raw(`/internal/jobs/${jobId}/fail`, { lease_token: lease, error, retryable });
  }

  pauseAck(jobId: string, lease: string) {
    return this.raw(`/internal/jobs/${jobId}/pause`, { lease_token: lease });
  }
}
