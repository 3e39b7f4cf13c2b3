/**
 * Uploads a model folder to the Workers deployment's R2 bucket under models/<id>/, where BASE_MODELS looks for it
 * (src/entry/worker-models.ts): every regular file of the folder (sub-folders such as data/ are skipped), manifest.json
 * last, so a half-finished upload is never taken for a model. The id is the manifest's `id`, else its `base`, else
 * the folder name (as on Node: models/tiny -> "tiny-arith"). A running Worker picks the model up within seconds.
 *
 *   npm run upload-model -- models/tiny [--id tiny-arith] [--persist-to <dir>]     wrangler dev's local R2
 *   npm run upload-model -- models/tiny --remote                                   the deployed bucket
 *
 * The bucket is wrangler.toml's BLOBS bucket unless --bucket names another. One `wrangler r2 object put` per file;
 * wrangler uploads objects of up to 300 MB that way; larger weights go up with an S3 client (rclone, aws s3 cp)
 * to the same keys.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { targetArgs, wrangler, type Target } from './wrangler-cli';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    id: { type: 'string' },
    remote: { type: 'boolean', default: false },
    'persist-to': { type: 'string' },
    bucket: { type: 'string' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: npm run upload-model -- <model folder> [--id <id>] [--remote | --persist-to <dir>] [--bucket <name>]');
  process.exit(2);
}
const folder = resolve(positionals[0]!);
const manifest = JSON.parse(readFileSync(join(folder, 'manifest.json'), 'utf8')) as Record<string, unknown>;
const id = values.id ?? String(manifest.id ?? manifest.base ?? basename(folder));
if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) {
  console.error(`model id '${id}' is not a plain name`);
  process.exit(2);
}
const bucket = values.bucket ?? /bucket_name\s*=\s*"([^"]+)"/.exec(readFileSync(new URL('../wrangler.toml', import.meta.url), 'utf8'))?.[1];
if (!bucket) throw new Error('no bucket_name in wrangler.toml; pass --bucket');
const target: Target = { remote: values.remote!, persistTo: values['persist-to'] };

const names = readdirSync(folder, { withFileTypes: true })
  .filter((e) => e.isFile() && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(e.name))
  .map((e) => e.name)
  .sort((a, b) => Number(a === 'manifest.json') - Number(b === 'manifest.json') || a.localeCompare(b));
for (const name of names) {
  wrangler(['r2', 'object', 'put', `${bucket}/models/${id}/${name}`, '--file', join(folder, name), ...targetArgs(target)]);
  console.error(`uploaded models/${id}/${name}`);
}
console.error(`Model '${id}' is in ${values.remote ? 'the deployed' : 'the local'} bucket ${bucket}; list it in BASE_MODELS.`);
