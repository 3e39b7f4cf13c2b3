/**
 * Creates a tenant (organisation) and an API key for it in the DATA_DIR database, and prints the key once (only
 * its SHA-256 is stored). Usage: `npm run create-api-key -- [--tenant <name>] [--name <key name>]`
 * (DATA_DIR defaults to ./.data, like the server). Pass `--tenant-id <id>` to add a key to an existing tenant.
 */
import { parseArgs } from 'node:util';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { eq } from 'drizzle-orm';
import { openSqliteDatabase } from '../src/adapters/sqlite-database';
import { apiKeys, tenants } from '../src/db/schema';
import { newApiKey } from '../src/middleware/auth';
import { createIds, systemClock } from '../src/lib/ids';

const { values } = parseArgs({
  options: { tenant: { type: 'string', default: 'default' }, 'tenant-id': { type: 'string' }, name: { type: 'string', default: 'default' } },
});
const dataDir = resolve(process.env.DATA_DIR ?? './.data');
mkdirSync(dataDir, { recursive: true });
const database = openSqliteDatabase(join(dataDir, 'api.sqlite'));
const { db } = database;
const ids = createIds(systemClock);
const now = Date.now();

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
const key = newApiKey(ids);
await db.insert(apiKeys).values({ id: ids.next('key'), tenantId, keyHash: key.hash, prefix: key.prefix, name: values.name!, createdAt: now });
database.close();
console.error(`Created an API key for tenant ${tenantId} in ${dataDir}. It is shown only now:`);
console.log(key.key);
