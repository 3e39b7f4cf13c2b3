/** Stream helpers shared by blob store adapters and upload routes. */

export class BlobTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`blob larger than ${maxBytes} bytes`);
  }
}

/** A write-once key (`put` with `ifAbsent`) already holds a blob. */
export class BlobExistsError extends Error {
  constructor(readonly key: string) {
    super(`blob ${key} already exists`);
  }
}

/** Content whose SHA-256 differs from the one a `put` (or a signed upload URL) was given. */
export class BlobDigestMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`content has sha256 ${actual}, not ${expected}`);
  }
}

/** A stream that errors once more than `maxBytes` passed through it. */
export function limitStream(maxBytes: number): TransformStream<Uint8Array, Uint8Array> {
  let total = 0;
  return new TransformStream({
    transform(chunk, controller) {
      total += chunk.byteLength;
      if (total > maxBytes) controller.error(new BlobTooLargeError(maxBytes));
      else controller.enqueue(chunk);
    },
  });
}
