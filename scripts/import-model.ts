/**
 * Imports a downloaded Hugging Face Qwen2 / Llama folder as a base model folder: the same code as the worker image's
 * `python -m softgrpo.import_model` (gpu-worker/src/softgrpo/import_model.py), run with gpu-worker's Python; see
 * docs/MODELS.md. With --upload it then registers the folder on Workers with `npm run upload-model` (scripts/upload-model.ts).
 *
 *   npm run import-model -- ~/hf/Qwen2.5-Math-1.5B-Instruct --out models/qwen2.5-math-1.5b [--int8] [--check]
 *       [--id <id>] [--think-start '<think>' --think-end '</think>'] [--add-think-tokens] [--context-length N]
 *       [--upload [--remote | --persist-to <dir>]]
 *
 * Exit status: 0 imported; 2 the folder cannot be imported (every problem is printed, each naming its file);
 * otherwise the failing step's status. PYTHON overrides the interpreter (default gpu-worker/.venv/bin/python).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const python = process.env.PYTHON ?? join(ROOT, 'gpu-worker/.venv/bin/python');

const args = process.argv.slice(2);
const uploadFlags = new Set(['--upload', '--remote']);
const importArgs: string[] = [];
const uploadArgs: string[] = [];
let upload = false;
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!;
  if (arg === '--upload') upload = true;
  else if (uploadFlags.has(arg)) uploadArgs.push(arg);
  else if (arg === '--persist-to') uploadArgs.push(arg, args[++i] ?? '');
  else importArgs.push(arg);
}
if (importArgs.length === 0 || importArgs.includes('--help') || importArgs.includes('-h')) {
  spawnSync(python, ['-m', 'softgrpo.import_model', '--help'], { stdio: 'inherit' });
  console.error('\n(npm run import-model) also: --upload [--remote | --persist-to <dir>] runs npm run upload-model on the new folder');
  process.exit(importArgs.length === 0 ? 2 : 0);
}

const imported = spawnSync(python, ['-m', 'softgrpo.import_model', ...importArgs], {
  stdio: ['ignore', 'pipe', 'inherit'],
  encoding: 'utf8',
  maxBuffer: 16 * 1024 * 1024,
});
if (imported.error) {
  console.error(`cannot run ${python} (${imported.error.message}); run scripts/bootstrap.sh or set PYTHON`);
  process.exit(1);
}
process.stdout.write(imported.stdout ?? '');
if (imported.status !== 0) process.exit(imported.status ?? 1);

if (upload) {
  const { folder } = JSON.parse(imported.stdout.slice(imported.stdout.indexOf('{'))) as { folder: string };
  const uploaded = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/upload-model.ts'), folder, ...uploadArgs], {
    stdio: 'inherit',
  });
  process.exit(uploaded.status ?? 1);
}
