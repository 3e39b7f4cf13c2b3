/** Named types of the API, from the generated schema.d.ts (`npm run sdk:generate`), plus the stream chunks. */
import type { components, paths } from './schema';

type S = components['schemas'];
export type { components, paths };
export type ReasonRequest = S['ReasonRequest'];
export type ReasonResponse = S['ReasonResponse'];
export type ReasonAggregate = S['ReasonAggregate'];
export type ReasonUsage = S['ReasonUsage'];
/** One soft thinking step (`soft_thoughts: true`): the k token ids mixed, their text and mixture weights. */
export type SoftThought = S['SoftThought'];
export type FileObject = S['File'];
export type FileList = S['FileList'];
export type DeletedFile = S['DeletedFile'];
export type FineTuningJob = S['FineTuningJob'];
export type CreateFineTuningJob = S['CreateFineTuningJob'];
export type FineTuningJobList = S['FineTuningJobList'];
export type FineTuningJobEvent = S['FineTuningJobEvent'];
export type FineTuningJobEventList = S['FineTuningJobEventList'];
export type FineTuningJobCheckpointList = S['FineTuningJobCheckpointList'];
export type Model = S['Model'];
export type ModelList = S['ModelList'];
export type JobStatus = FineTuningJob['status'];
export type ListQuery = { after?: string; limit?: number };
/** Events: newest first by default (as OpenAI), `order: 'asc'` for oldest first. */
export type EventsQuery = ListQuery & { order?: 'asc' | 'desc' };

export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

/**
 * One `data:` payload of `POST /v1/reason` with `stream: true` (src/routes/reason/stream.ts): per-sample deltas
 * (`reasoning` while thinking, `content` for the answer), a per-sample final chunk with `finish_reason`, then one
 * `reason.vote` chunk with the majority vote. Every chunk carries the request's seed.
 */
export interface ReasonChunk {
  object: 'reason.chunk';
  id: string;
  created: number;
  model: string;
  seed: number;
  choices: {
    index: number;
    delta: { reasoning?: string; reasoning_content?: string; content?: string };
    finish_reason: 'stop' | 'length' | 'cancelled' | null;
    thinking_end?: 'emitted' | 'cap' | 'cold_stop' | null;
    extracted_answer?: string | null;
    usage?: { reasoning_tokens: number; answer_tokens: number; completion_tokens: number };
    soft_thoughts?: SoftThought[]; // on the final chunk of a choice, when the request asked for soft_thoughts
  }[];
}
export interface ReasonVoteChunk {
  object: 'reason.vote';
  id: string;
  created: number;
  model: string;
  seed: number;
  choices: [];
  aggregate: ReasonAggregate;
  usage: ReasonUsage;
}
export type ReasonStreamChunk = ReasonChunk | ReasonVoteChunk;
