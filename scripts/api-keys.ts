/**
 * Operator's view of the API keys in the DATA_DIR database (every tenant):
 *   npm run api-keys -- list                      # id, tenant, name, prefix, created, revoked
 *   npm run api-keys -- revoke <key_id>           # refused (401) from its next request on
 * Tenants manage their own keys through the API (/v1/api_keys). New keys: `npm run create-api-key`.
 */
import { join, resolve } from 'node:path';
import { openSqliteDatabase } from '../src/adapters/sqlite-database';
import { listApiKeys, revokeApiKey } from '../src/tenants/api-keys';

const [command, id] = process.argv.slice(2);
const usage = 'usage: npm run api-keys -- list | revoke <key_id>';
const dataDir = resolve(process.env.DATA_DIR ?? './.data');
const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().slice(0, 19) + 'Z');

if (command !== 'list' && !(command === 'revoke' && id)) {
  console.error(usage);
  process.exit(2);
}
const database = openSqliteDatabase(join(dataDir, 'api.sqlite'));
try {
  if (command === 'list') {
    const rows = await listApiKeys(database.db, null);
    console.log(['id', 'tenant', 'name', 'prefix', 'created', 'revoked'].join('\t'));
    for (const r of rows) console.log([r.id, r.tenantId, r.name, r.prefix, iso(r.createdAt), iso(r.revokedAt)].join('\t'));
  } else {
    const row = await revokeApiKey(database.db, null, id!, Date.now());
    if (!row) {
      console.error(`No API key ${id} in ${dataDir}.`);
      process.exitCode = 1;
    } else console.log(`Revoked ${row.id} (tenant ${row.tenantId}, ${row.prefix}...) at ${iso(row.revokedAt)}.`);
  }
} finally {
  database.close();
}
