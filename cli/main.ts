/**
 * `soft-reason`: the command line over the TypeScript SDK (sdk/typescript). `main()` takes argv and an environment
 * and returns the exit code, so tests run it in-process; cli/soft-reason.ts is the executable entry.
 *
 *   SOFT_REASON_API_KEY=sk-... npm run cli -- models
 *   npm run cli -- files upload train.jsonl
 *   npm run cli -- finetune create --model tiny-arith --training-file file-... --hp n_steps=20 --suffix demo
 *   npm run cli -- finetune events ftjob-... --follow
 *   npm run cli -- reason "What is 3*4-5?" --n 8 --stream
 *
 * Exit codes: 0 done, 1 the API answered an error (printed with its code, param and request id), 2 usage error.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_BASE_URL, SoftReason, SoftReasonError, type CreateFineTuningJob, type ReasonRequest } from '../sdk/typescript';
import { eventLine, fileRows, jobDetail, jobRows, modelRows, reasonSummary, table } from './format';
import { followJobProgress, type ProgressStream } from './job-progress';
import { ReasonStreamPrinter } from './reason-stream';

export const USAGE = `usage: soft-reason <command> [options]

  reason <prompt> [--model tiny-arith] [--n N] [--seed S] [--max-tokens T] [--mode soft|discrete] [--stream]
                  (--stream: the text as it arrives; with --json one chunk per line)
  files upload <path.jsonl>
  files list
  finetune create --model M --training-file FILE [--validation-file FILE] [--method soft_grpo|grpo]
                  [--grader math|exact|numeric|regex] [--pattern RE] [--suffix S] [--seed N]
                  [--hp key=value ...] [--metadata key=value ...] [--follow]
                  (--follow: a progress bar with step, reward and ETA until the job ends)
  finetune list
  finetune get|cancel|pause|resume <job_id>
  finetune events <job_id> [--follow] [--after ftevent-N]   (oldest first: the newest 100, or those after N;
                  one line per event; --json: one JSON event per line with --follow)
  models

options: --json (print the API's JSON), --base-url URL, --idempotency-key KEY (POSTs)
env:     SOFT_REASON_API_KEY (required), SOFT_REASON_BASE_URL (default ${DEFAULT_BASE_URL})`;

export interface CliIO {
  env: Record<string, string | undefined>;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Text without a newline (streamed reasoning on a terminal); absent: streamed text is printed line by line. */
  write?: (text: string) => void;
  /** Where `finetune create --follow` draws its progress (default: none, plain lines through `err`). */
  progress?: ProgressStream;
  /** For tests: the fetch the SDK uses. */
  fetch?: (input: Request) => Promise<Response>;
}

class UsageError extends Error {}

const OPTIONS = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  'base-url': { type: 'string' },
  'idempotency-key': { type: 'string' },
  model: { type: 'string' },
  n: { type: 'string' },
  seed: { type: 'string' },
  'max-tokens': { type: 'string' },
  mode: { type: 'string' },
  stream: { type: 'boolean' },
  'training-file': { type: 'string' },
  'validation-file': { type: 'string' },
  method: { type: 'string' },
  grader: { type: 'string' },
  pattern: { type: 'string' },
  suffix: { type: 'string' },
  hp: { type: 'string', multiple: true },
  metadata: { type: 'string', multiple: true },
  follow: { type: 'boolean', short: 'f' },
  after: { type: 'string' },
} as const;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a non-negative integer, got '${value}'`);
  return Number(value);
}

/** key=value pairs; values that read as numbers or booleans become them ("auto" stays a string). */
function pairs(name: string, items: string[] | undefined, typed: boolean): Record<string, unknown> | undefined {
  if (!items?.length) return undefined;
  const out: Record<string, unknown> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${name} takes key=value, got '${item}'`);
    const [k, v] = [item.slice(0, eq), item.slice(eq + 1)];
    out[k] = !typed ? v : v === 'true' ? true : v === 'false' ? false : v !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
  }
  return out;
}

function arg(positionals: string[], i: number, what: string): string {
  const v = positionals[i];
  if (!v) throw new UsageError(`missing ${what}`);
  return v;
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    io.err(`soft-reason: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals: p } = parsed;
  if (v.help || p.length === 0) {
    (v.help ? io.out : io.err)(USAGE);
    return v.help ? 0 : 2;
  }
  const apiKey = io.env.SOFT_REASON_API_KEY;
  if (!apiKey) {
    io.err('soft-reason: set SOFT_REASON_API_KEY to an API key (create one with `npm run create-api-key`)');
    return 2;
  }
  const api = new SoftReason({ apiKey, baseUrl: v['base-url'] ?? io.env.SOFT_REASON_BASE_URL ?? DEFAULT_BASE_URL, fetch: io.fetch });
  const post = { idempotencyKey: v['idempotency-key'] };
  const print = (json: unknown, text: () => string) => io.out(v.json ? JSON.stringify(json, null, 2) : text());

  try {
    const [cmd, sub] = p;
    if (cmd === 'models') {
      const list = await api.listModels();
      print(list, () => table(modelRows(list.data)));
    } else if (cmd === 'reason') {
      const body: ReasonRequest = {
        model: v.model ?? 'tiny-arith',
        prompt: arg(p, 1, 'the prompt: soft-reason reason "<question>"'),
        n: int('n', v.n),
        seed: int('seed', v.seed),
        max_tokens: int('max-tokens', v['max-tokens']),
        ...(v.mode ? { mode: v.mode as ReasonRequest['mode'] } : {}),
      };
      if (v.stream) {
        const printer = new ReasonStreamPrinter(io, body.n ?? 1);
        for await (const chunk of api.reasonStream(body, post)) {
          if (v.json) io.out(JSON.stringify(chunk));
          else printer.chunk(chunk);
        }
      } else {
        const r = await api.reason(body, post);
        print(r, () => reasonSummary(r));
      }
    } else if (cmd === 'files' && sub === 'upload') {
      const f = await api.uploadFile(arg(p, 2, 'the path of a JSONL file'), post);
      print(f, () => `${f.id}  ${f.filename}  ${f.examples} examples, ${f.bytes} bytes`);
    } else if (cmd === 'files' && sub === 'list') {
      const list = await api.listFiles({ limit: 100 });
      print(list, () => table(fileRows(list.data)));
    } else if (cmd === 'finetune' && sub === 'create') {
      if (!v.model || !v['training-file']) throw new UsageError('finetune create needs --model and --training-file');
      const grader = (v.grader ?? 'math') as 'math';
      const body: CreateFineTuningJob = {
        model: v.model,
        training_file: v['training-file'],
        validation_file: v['validation-file'],
        method: { type: (v.method ?? 'soft_grpo') as 'soft_grpo', hyperparameters: pairs('hp', v.hp, true) as never },
        grader: (v.pattern ? { type: grader, pattern: v.pattern } : { type: grader }) as CreateFineTuningJob['grader'],
        suffix: v.suffix,
        seed: int('seed', v.seed),
        metadata: pairs('metadata', v.metadata, false) as Record<string, string> | undefined,
      };
      const job = await api.createJob(body, post);
      if (!v.follow) {
        print(job, () => jobDetail(job));
      } else {
        if (!v.json) io.out(`created ${job.id}; following it (Ctrl-C stops following, not the job)`);
        const ended = await followJobProgress(api, job, io.progress ?? { write: (t) => io.err(t.replace(/\n$/, '')) });
        print(ended, () => jobDetail(ended));
        return ended.status === 'succeeded' ? 0 : 1;
      }
    } else if (cmd === 'finetune' && sub === 'list') {
      const list = await api.listJobs({ limit: 100 });
      print(list, () => table(jobRows(list.data)));
    } else if (cmd === 'finetune' && (sub === 'get' || sub === 'cancel' || sub === 'pause' || sub === 'resume')) {
      const id = arg(p, 2, 'the job id');
      const job =
        sub === 'get' ? await api.getJob(id) : sub === 'cancel' ? await api.cancelJob(id, post) : sub === 'pause' ? await api.pauseJob(id, post) : await api.resumeJob(id, post);
      print(job, () => jobDetail(job));
    } else if (cmd === 'finetune' && sub === 'events') {
      const id = arg(p, 2, 'the job id');
      if (v.follow) {
        for await (const e of api.streamEvents(id, { after: v.after })) io.out(v.json ? JSON.stringify(e) : eventLine(e));
      } else {
        // Oldest first, as a log reads: the 100 newest (reversed), or the 100 after --after.
        const page = await api.events(id, { after: v.after, limit: 100, order: v.after ? 'asc' : 'desc' });
        const lines = v.after ? page.data : [...page.data].reverse();
        print(page, () => lines.map(eventLine).join('\n'));
      }
    } else {
      throw new UsageError(`unknown command: ${p.join(' ')}`);
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`soft-reason: ${e.message}\n\n${USAGE}`);
      return 2;
    }
    if (e instanceof SoftReasonError) {
      const where = [`HTTP ${e.status}`, e.code && `code ${e.code}`, e.param && `param ${e.param}`, e.requestId && `request id ${e.requestId}`];
      io.err(`soft-reason: ${e.error.message}\n  (${where.filter(Boolean).join(', ')})`);
      return 1;
    }
    // Node's fetch reports network failures as TypeError('fetch failed') with the reason in `cause`.
    if (e instanceof TypeError && e.message === 'fetch failed') {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      io.err(`soft-reason: cannot reach ${api.baseUrl}: ${cause?.code ?? cause?.message ?? 'network error'} (is the API running? \`npm start\`; or set SOFT_REASON_BASE_URL)`);
      return 1;
    }
    io.err(`soft-reason: ${(e as Error).message}`);
    return 1;
  }
}
