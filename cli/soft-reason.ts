/**
 * The `soft-reason` command (cli/main.ts has the commands).  Run: npm run cli -- <command> [options]
 * (or: npx tsx cli/soft-reason.ts ...). Needs SOFT_REASON_API_KEY; SOFT_REASON_BASE_URL defaults to
 * http://127.0.0.1:8787.
 */
import { main } from './main';

const code = await main(process.argv.slice(2), {
  env: process.env,
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  write: (text) => process.stdout.write(text),
  progress: process.stderr,
});
process.exitCode = code;
