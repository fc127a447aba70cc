// A BlockDevice over a block allocation table: the shape VHD (dynamic/differencing),
// VHDX and VDI share. The format supplies, per block, where its data lives in the
// file (or that it reads as zeros / falls through to the parent / is present only
// sector by sector); this class does the reads (one pread per run of host-contiguous
// blocks, issued together) and the extent map, so no format repeats them.

import type { BlockDevice, DeviceInfo, Extent, ExtentKind } from './device.js';
import type { ByteSource } from '../io/source.js';
import { CorruptImage, InvalidArgument, UnsupportedFeature } from '../errors.js';
import { isZero } from './blockstream.js';

/** Block states a format returns from blockHost() besides a host offset (>= 0). */
export const UNALLOCATED = -1;
export const ZERO = -2;

export interface PartialBlock {
  /** Host offset of the block's data (sector s lives at host + s * sectorSize). */
  host: number;
  /** One bit per sector: set = stored in this layer. */
  bits: Uint8Array;
  /** VHD numbers bits from the most significant one; VHDX from the least. */
  msbFirst: boolean;
}

export abstract class TableDevice implements BlockDevice {
  abstract readonly format: string;
  readonly name: string;
  backing: BlockDevice | null = null;
  private bitmapCache = new Map<number, PartialBlock>();

  constructor(
    protected readonly source: ByteSource,
    readonly virtualSize: number,
    protected readonly blockSize: number,
    protected readonly sectorSize = 512,
  ) {
    this.name = source.name;
  }

  /** Host offset of block i's data, or UNALLOCATED / ZERO. Ignored when isPartial(i). */
  protected abstract blockHost(i: number): number;
  /** True when block i is present only for some sectors (differencing images). */
  protected isPartial(_i: number): boolean { return false; }
  protected loadPartial(_i: number): Promise<PartialBlock> { throw new Error('no partial blocks'); }
  abstract describe(): DeviceInfo;

  /** Hook for formats that must patch reads (VHDX replays its log in memory). */
  protected async readFile(buf: Uint8Array, hostOffset: number): Promise<void> {
    const n = await this.source.read(buf, hostOffset);
    if (n < buf.length) {
      throw new CorruptImage(`data at host offset ${hostOffset} runs past the end of the file`, { file: this.name, offset: hostOffset + n });
    }
  }

  private async partial(i: number): Promise<PartialBlock> {
    let p = this.bitmapCache.get(i);
    if (!p) {
      p = await this.loadPartial(i);
      if (this.bitmapCache.size >= 256) this.bitmapCache.delete(this.bitmapCache.keys().next().value!);
      this.bitmapCache.set(i, p);
    }
    return p;
  }

  private sectorSet(p: PartialBlock, s: number): boolean {
    const byte = p.bits[s >> 3] ?? 0;
    return p.msbFirst ? ((byte >> (7 - (s & 7))) & 1) === 1 : ((byte >> (s & 7)) & 1) === 1;
  }

  private async readBacking(buf: Uint8Array, offset: number): Promise<void> {
    const b = this.backing;
    const inside = b ? Math.max(0, Math.min(buf.length, b.virtualSize - offset)) : 0;
    if (inside > 0) await b!.read(buf.subarray(0, inside), offset);
    if (inside < buf.length) buf.fill(0, inside);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + buf.length > this.virtualSize) {
      throw new InvalidArgument(`read of ${buf.length} bytes at ${offset} is outside the ${this.virtualSize}-byte disk`, { file: this.name });
    }
    const bs = this.blockSize;
    const jobs: Promise<void>[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const g = offset + pos;
      const bi = Math.floor(g / bs);
      const inBlock = g - bi * bs;
      let end = pos + Math.min(bs - inBlock, buf.length - pos);
      if (this.isPartial(bi)) {
        const p = await this.partial(bi);
        // Runs of sectors with the same presence bit.
        let q = pos;
        while (q < end) {
          const off = offset + q - bi * bs;
          const s = Math.floor(off / this.sectorSize);
          const present = this.sectorSet(p, s);
          let r = Math.min(end, q + ((s + 1) * this.sectorSize - off));
          let t = s + 1;
          while (r < end && this.sectorSet(p, t) === present) { r = Math.min(end, r + this.sectorSize); t++; }
          if (present) jobs.push(this.readFile(buf.subarray(q, r), p.host + off));
          else jobs.push(this.readBacking(buf.subarray(q, r), offset + q));
          q = r;
        }
        pos = end;
        continue;
      }
      const h = this.blockHost(bi);
      let nb = bi + 1;
      if (h >= 0) {
        let expect = h + bs;
        while (end < buf.length && !this.isPartial(nb) && this.blockHost(nb) === expect) {
          end += Math.min(bs, buf.length - end); nb++; expect += bs;
        }
        jobs.push(this.readFile(buf.subarray(pos, end), h + inBlock));
      } else {
        const kind = h === ZERO || !this.backing ? ZERO : UNALLOCATED;
        while (end < buf.length && !this.isPartial(nb)) {
          const n = this.blockHost(nb);
          if (n >= 0 || (n === ZERO || !this.backing ? ZERO : UNALLOCATED) !== kind) break;
          end += Math.min(bs, buf.length - end); nb++;
        }
        if (kind === ZERO) buf.fill(0, pos, end);
        else jobs.push(this.readBacking(buf.subarray(pos, end), g));
      }
      pos = end;
    }
    await Promise.all(jobs);
  }

  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    const end = Math.min(offset + length, this.virtualSize);
    const bs = this.blockSize;
    let cur: Extent | null = null;
    const push = (e: Extent): Extent | null => {
      if (cur && cur.kind === e.kind && cur.offset + cur.length === e.offset &&
          (cur.hostOffset === undefined) === (e.hostOffset === undefined) &&
          (cur.hostOffset === undefined || cur.hostOffset + cur.length === e.hostOffset)) {
        cur.length += e.length;
        return null;
      }
      const out = cur;
      cur = e;
      return out;
    };
    let g = offset;
    while (g < end) {
      const bi = Math.floor(g / bs);
      const inBlock = g - bi * bs;
      const n = Math.min(bs - inBlock, end - g);
      if (this.isPartial(bi)) {
        const p = await this.partial(bi);
        let q = 0;
        while (q < n) {
          const off = inBlock + q;
          const s = Math.floor(off / this.sectorSize);
          const present = this.sectorSet(p, s);
          const m = Math.min(n - q, (s + 1) * this.sectorSize - off);
          const e: Extent = present
            ? { offset: g + q, length: m, kind: 'data', hostOffset: p.host + off }
            : { offset: g + q, length: m, kind: 'unallocated' };
          const out = push(e);
          if (out) yield out;
          q += m;
        }
      } else {
        const h = this.blockHost(bi);
        const kind: ExtentKind = h >= 0 ? 'data' : h === ZERO ? 'zero' : 'unallocated';
        // Extend over following blocks of the same kind (host-contiguous for data) without
        // an object per block: a 64 TiB disk has tens of millions of blocks.
        let len = n;
        let nb = bi + 1;
        while (g + len < end && !this.isPartial(nb)) {
          const x = this.blockHost(nb);
          if (h >= 0 ? x !== h + (nb - bi) * bs : x !== h) break;
          len += Math.min(bs, end - (g + len));
          nb++;
        }
        const out = push(h >= 0 ? { offset: g, length: len, kind, hostOffset: h + inBlock } : { offset: g, length: len, kind });
        if (out) yield out;
        g += len;
        continue;
      }
      g += n;
    }
    if (cur) yield cur;
  }

  /**
   * Allocates block i for an in-place write, filled with zeros, and records it in the
   * format's table; returns its host offset. Formats that can be written override it.
   */
  protected allocateBlock?(i: number): Promise<number>;
  private writeChain: Promise<void> = Promise.resolve();

  /**
   * In-place guest writes (opened writable, format with allocateBlock); one at a time,
   * since writes may allocate. Formats that support writing expose it as write().
   */
  protected writeBlocks(buf: Uint8Array, offset: number): Promise<void> {
    const run = this.writeChain.then(() => this.doWrite(buf, offset));
    this.writeChain = run.catch(() => {});
    return run;
  }

  private async doWrite(buf: Uint8Array, offset: number): Promise<void> {
    const src = this.source;
    if (!src.write || !this.allocateBlock) throw new UnsupportedFeature(`${this.format} image opened read-only`, { file: this.name });
    if (offset < 0 || offset + buf.length > this.virtualSize) throw new InvalidArgument(`write of ${buf.length} bytes at ${offset} is outside the ${this.virtualSize}-byte disk`, { file: this.name });
    const bs = this.blockSize;
    let pos = 0;
    while (pos < buf.length) {
      const g = offset + pos;
      const bi = Math.floor(g / bs);
      const inBlock = g - bi * bs;
      const n = Math.min(bs - inBlock, buf.length - pos);
      const piece = buf.subarray(pos, pos + n);
      if (this.isPartial(bi)) throw new UnsupportedFeature('writing into differencing images is not supported', { file: this.name });
      let h = this.blockHost(bi);
      if (h < 0) {
        // Zeros over a block that already reads as zeros need no block.
        if ((h === ZERO || !this.backing) && isZero(piece)) { pos += n; continue; }
        if (this.backing) throw new UnsupportedFeature('writing into images with a parent is not supported', { file: this.name });
        h = await this.allocateBlock(bi);
      }
      await src.write(piece, h + inBlock);
      pos += n;
    }
  }

  async flush(): Promise<void> {
    await this.writeChain;
    await this.source.sync?.();
  }

  async close(): Promise<void> {
    try {
      await this.backing?.close();
    } finally {
      await this.source.close();
    }
  }
}

/** Reads exactly buf.length bytes at `offset` or throws CorruptImage (file too short). */
export async function readExact(src: ByteSource, buf: Uint8Array, offset: number, what: string): Promise<Uint8Array> {
  if (offset < 0 || offset + buf.length > src.size) {
    throw new CorruptImage(`${what} (${buf.length} bytes at ${offset}) lies outside the ${src.size}-byte file`, { file: src.name, offset });
  }
  const n = await src.read(buf, offset);
  if (n < buf.length) throw new CorruptImage(`${what} is truncated`, { file: src.name, offset: offset + n });
  return buf;
}
