/**
 * The Worker build (`wrangler deploy --dry-run`, as in npm test) and what went into it: the Workers bundle must not
 * contain Node-only code (better-sqlite3, onnxruntime-node, @hono/node-server, node:fs, the Node entry and its
 * adapters), and may import only the `node:` modules workerd provides natively under nodejs_compat that the shared
 * code is known to use. A shared module that starts importing a Node-only one fails here, naming the chain.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const outdir = mkdtempSync(join(tmpdir(), 'worker-bundle-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

const FORBIDDEN_INPUTS = [
  /node_modules\/better-sqlite3\//,
  /node_modules\/onnxruntime-(node|common)\//,
  /node_modules\/@hono\/node-server\//,
  /^src\/entry\/node/,
  /^src\/entry\/base-models\.ts$/,
  /^src\/adapters\/(sqlite-database|local-blob-store)\.ts$/,
  /^src\/engine\/(onnx-engine|node-engines|model-cache|threaded-engine|engine-thread[\w-]*)\.(ts|mjs)$/,
];
const ALLOWED_NODE_BUILTINS = new Set(['node:crypto']);

interface Metafile {
  inputs: Record<string, { imports: { path: string; original?: string; external?: boolean }[] }>;
}

describe('the Workers bundle', () => {
  const build = spawnSync(
    'npx',
    ['wrangler', 'deploy', '--dry-run', '--outdir', outdir, '--metafile', join(outdir, 'meta.json')],
    { encoding: 'utf8', env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }, timeout: 120_000 },
  );

  it('builds_with_wrangler_deploy_dry_run', () => {
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);
  });

  it('contains_no_node_only_module', () => {
    const meta = JSON.parse(readFileSync(join(outdir, 'meta.json'), 'utf8')) as Metafile;
    const inputs = Object.keys(meta.inputs);
    expect(inputs).toContain('src/entry/worker.ts');
    // Who imports what, to name the chain that pulled a forbidden module in.
    const importers = new Map<string, string>();
    for (const [file, { imports }] of Object.entries(meta.inputs)) for (const i of imports) if (!importers.has(i.path)) importers.set(i.path, file);
    const chain = (file: string) => {
      const out = [file];
      for (let f = importers.get(file); f && out.length < 20; f = importers.get(f)) out.push(f);
      return out.join(' <- ');
    };
    const leaked = inputs.filter((f) => FORBIDDEN_INPUTS.some((re) => re.test(f))).map(chain);
    expect(leaked).toEqual([]);
    const builtins = new Set(
      Object.values(meta.inputs).flatMap(({ imports }) =>
        imports.filter((i) => i.external && (i.original ?? i.path).startsWith('node:')).map((i) => i.original ?? i.path),
      ),
    );
    expect([...builtins].filter((b) => !ALLOWED_NODE_BUILTINS.has(b))).toEqual([]);
    const bundle = readFileSync(join(outdir, 'worker.js'), 'utf8');
    const imported = [...bundle.matchAll(/from\s+"(node:[^"]+)"|require\("(node:[^"]+)"\)/g)].map((m) => m[1] ?? m[2]);
    expect(imported.filter((b) => !ALLOWED_NODE_BUILTINS.has(b!))).toEqual([]);
  });
});
