/**
 * Runs the project's own wrangler (node_modules) for the setup scripts (scripts/create-api-key.ts --d1,
 * scripts/upload-model.ts), against the local state of `wrangler dev` (--local, optionally --persist-to) or the
 * deployed account (--remote). Output goes to this process's stderr; a failing command ends the script.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');

export interface Target {
  remote: boolean;
  /** Local state folder of `wrangler dev --persist-to` (default: wrangler's, .wrangler/state). */
  persistTo?: string;
}

export const targetArgs = (t: Target) => (t.remote ? ['--remote'] : ['--local', ...(t.persistTo ? ['--persist-to', t.persistTo] : [])]);

export function wrangler(args: string[]): string {
  const run = spawnSync(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.status !== 0) {
    process.stderr.write(run.stdout + run.stderr);
    throw new Error(`wrangler ${args.slice(0, 3).join(' ')} failed (exit ${run.status})`);
  }
  return run.stdout;
}

/** A SQL string literal (D1's `--command` takes no bound parameters). */
export const sqlString = (s: string) => `'${s.replace(/'/g, "''")}'`;
