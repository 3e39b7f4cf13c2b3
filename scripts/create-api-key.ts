/**
 * Creates a tenant (organisation) and an API key for it, and prints the key once (only its SHA-256 is stored).
 *
 *   npm run create-api-key -- [--tenant <name>] [--name <key name>] [--tenant-id <id>]        Node: DATA_DIR's SQLite
 *   npm run create-api-key -- --d1 local [--persist-to <dir>] [--tenant ...]                  Workers: wrangler dev's D1
 *   npm run create-api-key -- --d1 remote [--tenant ...]                                       Workers: the deployed D1
 *
 * DATA_DIR defaults to ./.data, like the server. `--tenant-id <id>` adds a key to an existing tenant. With --d1 the
 * migrations are applied first (`wrangler d1 migrations apply DB`, idempotent), so this one command also prepares a
 * fresh local D1; --persist-to is the folder given to `wrangler dev --persist-to` (default: wrangler's own).
 */
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { eq } from 'drizzle-orm';
import { openSqliteDatabase } from '../src/adapters/sqlite-database';
import { tenants } from '../src/db/schema';
import { newApiKey } from '../src/middleware/auth';
import { createApiKey } from '../src/tenants/api-keys';
import { createIds, systemClock } from '../src/lib/ids';
import { sqlString, targetArgs, wrangler, type Target } from './wrangler-cli';

const { values } = parseArgs({
  options: {
    tenant: { type: 'string', default: 'default' },
    'tenant-id': { type: 'string' },
    name: { type: 'string', default: 'default' },
    d1: { type: 'string' },
    'persist-to': { type: 'string' },
  },
});
const ids = createIds(systemClock);
const now = Date.now();

if (values.d1 !== undefined) {
  if (values.d1 !== 'local' && values.d1 !== 'remote') {
    console.error(`--d1 must be "local" or "remote", got '${values.d1}'`);
    process.exit(2);
  }
  const target: Target = { remote: values.d1 === 'remote', persistTo: values['persist-to'] };
  wrangler(['d1', 'migrations', 'apply', 'DB', ...targetArgs(target)]);
  const tenantId = values['tenant-id'] ?? ids.next('org');
  const key = newApiKey(ids);
  const keyId = ids.next('key');
  const statements = [
    ...(values['tenant-id']
      ? []
      : [`INSERT INTO tenants (id, name, created_at) VALUES (${sqlString(tenantId)}, ${sqlString(values.tenant!)}, ${now})`]),
    `INSERT INTO api_keys (id, tenant_id, key_hash, prefix, name, created_at) SELECT ${sqlString(keyId)}, id, ${sqlString(key.hash)}, ` +
      `${sqlString(key.prefix)}, ${sqlString(values.name!)}, ${now} FROM tenants WHERE id = ${sqlString(tenantId)}`,
    `SELECT count(*) AS created FROM api_keys WHERE id = ${sqlString(keyId)}`,
  ];
  const out = wrangler(['d1', 'execute', 'DB', ...targetArgs(target), '--yes', '--json', '--command', statements.join('; ')]);
  const results = JSON.parse(out) as { results: { created?: number }[] }[];
  if (results.at(-1)?.results[0]?.created !== 1) {
    console.error(`No tenant ${tenantId} in the ${values.d1} D1 database.`);
    process.exit(1);
  }
  console.error(`Created API key ${keyId} for tenant ${tenantId} in the ${values.d1} D1 database. It is shown only now:`);
  console.log(key.key);
} else {
  const dataDir = resolve(process.env.DATA_DIR ?? './.data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const database = openSqliteDatabase(join(dataDir, 'api.sqlite'));
  const { db } = database;
  let tenantId = values['tenant-id'];
  if (tenantId) {
    if (!(await db.select().from(tenants).where(eq(tenants.id, tenantId)).get())) {
      console.error(`No tenant ${tenantId} in ${dataDir}.`);
      process.exit(1);
    }
  } else {
    tenantId = ids.next('org');
    await db.insert(tenants).values({ id: tenantId, name: values.tenant!, createdAt: now });
  }
  const { key, row } = await createApiKey(db, ids, now, tenantId, values.name!);
  database.close();
  console.error(`Created API key ${row.id} for tenant ${tenantId} in ${dataDir}. It is shown only now:`);
  console.log(key);
}
