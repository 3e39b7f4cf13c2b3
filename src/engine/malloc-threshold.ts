/**
 * Keeps the batch's key-value cache buffers out of mmap, on glibc.
 *
 * onnxruntime-node copies every output of a run into a fresh ArrayBuffer, which V8 allocates with calloc. glibc
 * serves a block above its mmap threshold (128 KiB at first) with a fresh mmap and gives it back with munmap when
 * it is freed, so each one costs a page fault per 4 KiB page touched plus the kernel's zeroing. glibc raises the
 * threshold to the size of a freed mmap'd block (mallopt(3), M_MMAP_THRESHOLD, "dynamic"), but a batch cache
 * grows by one column a step, so each step's buffers are a little larger than the last freed ones, and every step
 * maps them again: at 32 rows and 100 columns, about 6 MB a step and 40% of the step's CPU time in the kernel.
 *
 * Freeing one block of 31 MiB once raises the threshold to just under glibc's ceiling for it (32 MiB on 64-bit),
 * and the heap's trim threshold to twice that, so buffers below 31 MiB are then reused from the heap (which keeps
 * up to about 62 MiB of free memory instead of giving it back at once). The block is allocated here and dropped;
 * V8 frees it at its next garbage collection, which a decoding engine triggers within a few steps. Elsewhere than
 * glibc this is one short-lived allocation and nothing else. GLIBC_TUNABLES (glibc.malloc.mmap_threshold and
 * trim_threshold) set at process start does the same explicitly.
 */
const BLOCK_BYTES = 31 * 2 ** 20;
let done = false;

export function raiseMmapThreshold(): void {
  if (done) return;
  done = true;
  let block: ArrayBuffer | null = new ArrayBuffer(BLOCK_BYTES);
  new Uint8Array(block)[BLOCK_BYTES - 1] = 0; // used, so it is allocated
  block = null;
}
