/**
 * The presigned-URL adapter (src/adapters/r2-blob-store.ts r2PresignedUrlSigner) against a local S3-compatible
 * server that this test starts: moto in server mode (PyPI `moto[server]`, a dev dependency of gpu-worker's uv
 * lock), on loopback, path-style like R2's endpoint. A checkpoint file goes up through a PUT URL signed with its
 * SHA-256 by the Python worker's own uploader (softgrpo.api_client.put_blob, which sends the checksum headers the
 * signature covers) and comes back through a GET URL with its content and its `x-amz-meta-sha256`, the hash the
 * R2 adapter's head() reads instead of the object.
 *
 * What moto does not do (5.2.5): verify SigV4 query signatures (its auth mode fails on presigned requests) or the
 * content against x-amz-checksum-sha256 (a TODO in its source). The signature's coverage of the checksum headers
 * is checked against an independent SigV4 computation in tests/workers/r2-blob-store.test.ts; the refusal of other
 * content by the store, for the stores this project runs (R2 binding, /blobs), in the Workers and API tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { r2PresignedUrlSigner } from '../../src/adapters/r2-blob-store';
import { checksumHeaders } from '../../src/adapters/signed-urls';
import { PYTHON, ROOT } from '../../scripts/start-stack';
import { freePort } from '../e2e/stack';

let moto: ChildProcess;
let endpoint: string;
const dir = mkdtempSync(join(tmpdir(), 'presigned-'));
const credentials = () => ({ accountId: 'local', accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-secret', bucketName: 'blobs', endpoint });
const signer = () => r2PresignedUrlSigner(credentials(), { now: () => Date.now() });

beforeAll(async () => {
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  moto = spawn(PYTHON, ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  for (let i = 0; ; i++) {
    const up = await fetch(`${endpoint}/blobs`, { method: 'PUT' }).catch(() => null); // CreateBucket
    if (up?.ok) break;
    if (i > 150) throw new Error('moto server did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
}, 60_000);

afterAll(() => {
  moto?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('presigned URLs on an S3-compatible server', () => {
  it('uploads_a_checkpoint_file_with_the_python_uploader_and_reads_it_and_its_sha256_back', async () => {
    const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(dir, 'model.safetensors'), bytes);
    const key = 'checkpoints/ftjob-01abc/step-2/attempt-1/model.safetensors';
    const put = await signer().sign({ key, method: 'PUT', expiresAt: Date.now() + 600_000, origin: '', sha256 });
    const py = spawnSync(
      PYTHON,
      ['-c', 'import sys, json; from softgrpo.api_client import WorkerApi; print(json.dumps(WorkerApi("http://unused", "t").put_blob(sys.argv[1], sys.argv[2])))', put, join(dir, 'model.safetensors')],
      { cwd: join(ROOT, 'gpu-worker'), encoding: 'utf8' },
    );
    expect(py.status, py.stderr).toBe(0);
    expect(JSON.parse(py.stdout)).toEqual({});

    const get = await signer().sign({ key, method: 'GET', expiresAt: Date.now() + 600_000, origin: '' });
    const res = await fetch(get);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-amz-meta-sha256')).toBe(sha256);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('puts_with_the_checksum_headers_the_url_names_as_signed', async () => {
    const sha256 = createHash('sha256').update('abc').digest('hex');
    const put = new URL(await signer().sign({ key: 'a/b.json', method: 'PUT', expiresAt: Date.now() + 60_000, origin: '', sha256 }));
    expect(put.origin + put.pathname).toBe(`${endpoint}/blobs/a/b.json`);
    expect(put.searchParams.get('X-Amz-SignedHeaders')).toBe('host;x-amz-checksum-sha256;x-amz-meta-sha256');
    const headers = checksumHeaders(sha256);
    expect(headers['x-amz-checksum-sha256']).toBe(createHash('sha256').update('abc').digest('base64'));
    const res = await fetch(put, { method: 'PUT', body: 'abc', headers });
    expect(res.status).toBe(200);
    const back = await fetch(await signer().sign({ key: 'a/b.json', method: 'GET', expiresAt: Date.now() + 60_000, origin: '' }));
    expect(await back.text()).toBe('abc');
  });
});
