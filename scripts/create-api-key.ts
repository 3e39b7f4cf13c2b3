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
import { tenants } from '../src/db/schema';
import { createApiKey } from '../src/tenants/api-keys';
import { createIds, systemClock } from '../src/lib/ids';

const { values } = parseArgs({
  options: { tenant: { type: 'string', default: 'default' }, 'tenant-id': { type: 'string' }, name: { type: 'string', default: 'default' } },
});
const dataDir = resolve(process.env.DATA_DIR ?? './.data');
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
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
const { key, row } = await createApiKey(db, ids, now, tenantId, values.name!);
database.close();
console.error(`Created API key ${row.id} for tenant ${tenantId} in ${dataDir}. It is shown only now:`);
console.log(key);
