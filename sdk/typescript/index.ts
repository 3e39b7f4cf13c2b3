/** The TypeScript SDK of the soft-thinking reasoning API (docs/SDK.md). */
export { SoftReason, DEFAULT_BASE_URL, type SoftReasonOptions, type CallOptions } from './client';
export { SoftReasonError, type ErrorEnvelope } from './errors';
export { createSender, createTransport, retryAfterMs, newIdempotencyKey, type TransportOptions } from './transport';
export { sseMessages } from './sse';
export * from './types';
