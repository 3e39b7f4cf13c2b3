/**
 * Writes openapi/openapi.json from the app's zod route definitions: `npm run openapi`.
 * `npm run openapi:check` (CI) exits 1 when the committed file differs from what the code generates.
 */
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp, openApiDocument } from '../src/app';
import { createLocalBlobStore } from '../src/adapters/local-blob-store';
import { openSqliteDatabase } from '../src/adapters/sqlite-database';
import { createHmacUrlSigner } from '../src/adapters/signed-urls';
import { createIds, systemClock } from '../src/lib/ids';
import { defaultConfig } from '../src/ports';

const target = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
const database = openSqliteDatabase(join(dir, 'db.sqlite'));
const app = createApp({
  database,
  blobs: createLocalBlobStore(join(dir, 'blobs')),
  blobUrls: createHmacUrlSigner('unused'),
  clock: systemClock,
  ids: createIds(systemClock),
  config: defaultConfig({ workerToken: 'unused', signingSecret: 'unused' }),
});
const text = `${JSON.stringify(openApiDocument(app), null, 2)}\n`;
database.close();
rmSync(dir, { recursive: true, force: true });

if (process.argv.includes('--check')) {
  const current = (() => {
    try {
      return readFileSync(target, 'utf8');
    } catch {
      return '';
    }
  })();
  if (current !== text) {
    console.error('openapi/openapi.json is stale: run `npm run openapi` and commit the result.');
    process.exit(1);
  }
  console.log('openapi/openapi.json is up to date.');
} else {
  mkdirSync(join(target, '..'), { recursive: true });
  writeFileSync(target, text);
  console.log(`wrote ${target}`);
}
