// Turns guest data arriving in increasing order (any alignment) into runs of whole
// blocks for block-table writers (VHD, VHDX, VDI). Aligned input is passed through
// without copying; only a block that arrives in pieces is assembled in one reused buffer.

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
  for (let p = 0; p < length; p += ZEROS.length) await write(ZEROS.subarray(0, Math.min(ZEROS.length, length - p)), offset + p);
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

export class BlockStream {
  private buf: Uint8Array | null = null;
  private bufBlock = -1;
  private lastEnd = 0;

  /** `emit(first, data)`: data holds whole blocks starting at block `first` (the disk's last block may be short). */
  constructor(
    private readonly blockSize: number,
    private readonly virtualSize: number,
    private readonly emit: (first: number, data: Uint8Array) => Promise<void>,
    private readonly file: string,
  ) {}

  async write(offset: number, data: Uint8Array): Promise<void> {
    if (offset < this.lastEnd) throw new InvalidArgument(`data at ${offset} arrived after data up to ${this.lastEnd}; writers need increasing order`, { file: this.file });
    if (offset + data.length > this.virtualSize) throw new InvalidArgument(`data at ${offset}+${data.length} is past the ${this.virtualSize}-byte disk`, { file: this.file });
    this.lastEnd = offset + data.length;
    const bs = this.blockSize;
    let pos = 0;
    while (pos < data.length) {
      const g = offset + pos;
      const bi = Math.floor(g / bs);
      const inBlock = g - bi * bs;
      if (this.bufBlock >= 0 && this.bufBlock !== bi) await this.flushBuf();
      const left = data.length - pos;
      if (inBlock === 0 && (left >= bs || g + left === this.virtualSize)) {
        const k = left >= bs ? Math.floor(left / bs) * bs : left;
        await this.emit(bi, data.subarray(pos, pos + k));
        pos += k;
        continue;
      }
      if (this.bufBlock !== bi) {
        this.buf ??= new Uint8Array(bs);
        this.buf.fill(0);
        this.bufBlock = bi;
      }
      const n = Math.min(bs - inBlock, left);
      this.buf!.set(data.subarray(pos, pos + n), inBlock);
      pos += n;
      if (inBlock + n === bs || g + n === this.virtualSize) await this.flushBuf();
    }
  }

  private async flushBuf(): Promise<void> {
    if (this.bufBlock < 0) return;
    const bi = this.bufBlock;
    this.bufBlock = -1;
    const len = Math.min(this.blockSize, this.virtualSize - bi * this.blockSize);
    await this.emit(bi, this.buf!.subarray(0, len));
  }

  async finish(): Promise<void> { await this.flushBuf(); }
}
