// Helpers for block-table writers (VHD, VHDX, VDI): zero detection and placing guest
// data into blocks allocated in the order the data arrives.

import { InvalidArgument } from '../errors.js';

const ZEROS = new Uint8Array(1 << 20);

/** True when every byte is zero (native memcmp against a zero page, 1 MiB at a time). */
export function isZero(data: Uint8Array): boolean {
  for (let p = 0; p < data.length; p += ZEROS.length) {
    const n = Math.min(ZEROS.length, data.length - p);
    if (Buffer.compare(Buffer.from(data.buffer, data.byteOffset + p, n), Buffer.from(ZEROS.buffer, 0, n)) !== 0) return false;
  }
  return true;
}

/** Writes `length` zero bytes at `offset` through `write`, 1 MiB at a time. */
export async function writeZeros(write: (buf: Uint8Array, offset: number) => Promise<void>, offset: number, length: number): Promise<void> {
  // Sixteen 1 MiB writes in flight at a time.
  for (let p = 0; p < length; p += 16 * ZEROS.length) {
    const batch: Promise<void>[] = [];
    for (let q = p; q < Math.min(length, p + 16 * ZEROS.length); q += ZEROS.length) batch.push(write(ZEROS.subarray(0, Math.min(ZEROS.length, length - q)), offset + q));
    await Promise.all(batch);
  }
}

/**
 * Writes in strictly increasing file order with gaps filled by zeros, for sinks that
 * cannot seek (a pipe, an HTTP response): fixed/static images stream this way.
 */
export class SequentialOut {
  pos = 0;
  constructor(private readonly write: (buf: Uint8Array, offset: number) => Promise<void>, private readonly file: string) {}
  async fillTo(offset: number): Promise<void> {
    if (offset < this.pos) throw new InvalidArgument(`data at ${offset} arrived after data up to ${this.pos}; a stream cannot go back`, { file: this.file });
    while (this.pos < offset) {
      const n = Math.min(ZEROS.length, offset - this.pos);
      await this.write(ZEROS.subarray(0, n), this.pos);
      this.pos += n;
    }
  }
  async put(buf: Uint8Array, offset: number): Promise<void> {
    await this.fillTo(offset);
    await this.write(buf, offset);
    this.pos = offset + buf.length;
  }
}

/** Splits a run of whole blocks into runs of blocks that are not all zero: [first block (relative), count]. */
export function nonZeroRuns(data: Uint8Array, blockSize: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  const n = Math.ceil(data.length / blockSize);
  for (let i = 0; i < n; i++) {
    if (isZero(data.subarray(i * blockSize, Math.min(data.length, (i + 1) * blockSize)))) continue;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === i) last[1]++;
    else runs.push([i, 1]);
  }
  return runs;
}

/**
 * Places guest data (arriving in increasing order, any alignment) straight into blocks
 * allocated at the end of the output, without assembling blocks in memory: a block is
 * allocated when its first non-zero byte arrives, and the parts of it never written
 * stay holes in the file, which read as zeros. Host-contiguous pieces go out in one
 * write. Only the current block can be written again, so no per-block state is kept.
 */
export class BlockPlacer {
  private lastEnd = 0;
  private curBlock = -1;
  private curHost = -1;

  /** `allocate(block)` returns the host offset of a new block's data (and records it in the format's table). */
  constructor(
    private readonly blockSize: number,
    private readonly virtualSize: number,
    private readonly allocate: (block: number) => Promise<number> | number,
    private readonly write: (buf: Uint8Array, offset: number) => Promise<void>,
    private readonly file: string,
  ) {}

  async place(offset: number, data: Uint8Array): Promise<void> {
    if (offset < this.lastEnd) throw new InvalidArgument(`data at ${offset} arrived after data up to ${this.lastEnd}; writers need increasing order`, { file: this.file });
    if (offset + data.length > this.virtualSize) throw new InvalidArgument(`data at ${offset}+${data.length} is past the ${this.virtualSize}-byte disk`, { file: this.file });
    this.lastEnd = offset + data.length;
    const bs = this.blockSize;
    const writes: Promise<void>[] = [];
    let runPos = 0, runHost = -1, runLen = 0;
    const flush = () => {
      if (runLen > 0) writes.push(this.write(data.subarray(runPos, runPos + runLen), runHost));
      runLen = 0;
    };
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const bi = Math.floor(g / bs);
      const inBlock = g - bi * bs;
      const n = Math.min(bs - inBlock, data.length - pos);
      if (bi !== this.curBlock) {
        // A block that would hold only zeros is never allocated.
        if (isZero(data.subarray(pos, pos + n))) { flush(); pos += n; continue; }
        this.curBlock = bi;
        this.curHost = await this.allocate(bi);
      }
      const h = this.curHost + inBlock;
      if (runLen > 0 && runHost + runLen === h) runLen += n;
      else { flush(); runPos = pos; runHost = h; runLen = n; }
      pos += n;
    }
    flush();
    await Promise.all(writes);
  }
}
