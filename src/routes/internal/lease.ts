/** Signed download lists of the /internal handlers (lease checks are in src/jobs/store.ts). */
import type { Deps } from '../../ports';

/** Signed GET URLs for a list of blobs. */
export async function signedFiles(
  deps: Deps,
  origin: string,
  expiresAt: number,
  items: { name: string; bytes: number; sha256: string; key: string }[],
) {
  return Promise.all(
    items.map(async ({ key, ...f }) => ({
      ...f,
      url: await deps.blobUrls.sign({ key, method: 'GET', expiresAt, origin }),
    })),
  );
}
