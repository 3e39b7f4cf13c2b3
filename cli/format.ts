/** How the CLI prints things: short aligned lines for people, or the API's JSON with --json. */
import type { FileObject, FineTuningJob, FineTuningJobEvent, Model, ReasonResponse } from '../sdk/typescript';

const iso = (unixSeconds: number | null) => (unixSeconds === null ? '-' : new Date(unixSeconds * 1000).toISOString().replace('.000Z', 'Z'));

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export const fileRows = (files: FileObject[]) => [
  ['ID', 'FILENAME', 'BYTES', 'EXAMPLES', 'CREATED'],
  ...files.map((f) => [f.id, f.filename, String(f.bytes), String(f.examples), iso(f.created_at)]),
];

export const jobRows = (jobs: FineTuningJob[]) => [
  ['ID', 'STATUS', 'MODEL', 'STEPS', 'FINE-TUNED MODEL', 'CREATED'],
  ...jobs.map((j) => [j.id, j.status, j.model, String(j.trained_steps), j.fine_tuned_model ?? '-', iso(j.created_at)]),
];

export const modelRows = (models: Model[]) => [['ID', 'KIND', 'ROOT', 'OWNED BY'], ...models.map((m) => [m.id, m.kind, m.root, m.owned_by])];

/** One event as a log line: time, level, type and the message (which the worker writes for people). */
export function eventLine(e: FineTuningJobEvent): string {
  return `${iso(e.created_at)}  ${e.level.padEnd(5)}  ${e.type.padEnd(10)}  ${e.message}`;
}

export function jobDetail(j: FineTuningJob): string {
  return table([
    ['id', j.id],
    ['status', j.status],
    ['model', j.model],
    ['method', j.method.type],
    ['training_file', j.training_file],
    ['validation_file', j.validation_file ?? '-'],
    ['fine_tuned_model', j.fine_tuned_model ?? '-'],
    ['trained_steps', String(j.trained_steps)],
    ['attempts', String(j.attempts)],
    ['seed', String(j.seed)],
    ['created_at', iso(j.created_at)],
    ['finished_at', iso(j.finished_at)],
    ...(j.error ? [['error', `${j.error.code}: ${j.error.message}`]] : []),
  ]);
}

export function reasonSummary(r: ReasonResponse): string {
  const lines = r.choices.map((c) => `[${c.index}] ${c.answer.trim()}  (extracted: ${c.extracted_answer ?? '-'}, ${c.finish_reason})`);
  const a = r.aggregate;
  lines.push(`answer: ${a.answer ?? '-'}  (${a.votes}/${a.samples} votes, seed ${r.seed}, ${r.usage.total_tokens} tokens)`);
  return lines.join('\n');
}
