// Guest-to-host cluster mapping: the L1 table, a bounded LRU of L2 tables, and a walk
// that reports how each guest range is stored. read(), extents(), write() and check all
// use this one walk.

import { CorruptImage } from '../../errors.js';
import type { ByteSource } from '../../io/source.js';
import {
  TWO32, HI_COMPRESSED, HI_OFFSET_MASK, LO_OFFSET_MASK, HI_COPIED,
} from './constants.js';

export const SEG_UNALLOC = 0;
export const SEG_ZERO = 1;
export const SEG_DATA = 2;
export const SEG_COMPRESSED = 3;
export type SegKind = 0 | 1 | 2 | 3;

/**
 * Called for each piece of the walked range, in guest order. `host` is the host offset
 * of `guest` for data, the start of the compressed payload for compressed clusters
 * (then `csize` is its length and `inCluster` the offset of `guest` inside the cluster).
 */
export type SegVisitor = (kind: SegKind, guest: number, len: number, host: number, csize: number, inCluster: number) => void;

export interface L2Table { offset: number; buf: Uint8Array; dv: DataView }

export interface MapGeometry {
  clusterBits: number;
  extendedL2: boolean;
  /** Host data lives in an external file (no compression; offset 0 may be valid). */
  externalData: boolean;
}

/** Decodes an L1 entry's L2 table offset (0 = unallocated). */
export function l1EntryOffset(hi: number, lo: number): number {
  return (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
}

/** Decodes a compressed descriptor into payload offset and the bytes up to its last sector. */
export function compressedDesc(hi: number, lo: number, clusterBits: number): { coff: number; csize: number; sectors: number } {
  const hiBits = 70 - clusterBits - 32;
  const coff = (hi & ((1 << hiBits) - 1)) * TWO32 + lo;
  const sectors = ((hi >>> hiBits) & ((1 << (clusterBits - 8)) - 1)) + 1;
  return { coff, csize: sectors * 512 - (coff % 512), sectors };
}

export class ClusterMap {
  readonly clusterSize: number;
  readonly l2Entries: number;
  readonly entryBytes: number;
  /** Guest bytes covered by one L2 table. */
  readonly l1Span: number;
  private cache = new Map<number, L2Table>();
  private readonly maxCached: number;

  constructor(
    readonly file: string,
    private src: ByteSource,
    readonly geo: MapGeometry,
    /** Active (or snapshot) L1 table bytes, l1Size * 8. */
    public l1: Uint8Array,
    /** Size of the file holding guest data (the image, or the external data file). */
    public dataSize: () => number,
  ) {
    this.clusterSize = 2 ** geo.clusterBits;
    this.entryBytes = geo.extendedL2 ? 16 : 8;
    this.l2Entries = this.clusterSize / this.entryBytes;
    this.l1Span = this.l2Entries * this.clusterSize;
    // 32 MiB of L2 tables covers 256 GiB of guest data at 64 KiB clusters.
    this.maxCached = Math.max(4, Math.floor(32 * 1024 * 1024 / this.clusterSize));
  }

  get l1Size(): number { return this.l1.length / 8; }

  l1Dv(): DataView { return new DataView(this.l1.buffer, this.l1.byteOffset, this.l1.byteLength); }

  /** The L2 table offset of L1 entry i (0 when unallocated); CorruptImage when it is invalid. */
  l2Offset(i: number, imageSize: number): number {
    const dv = this.l1Dv();
    const off = l1EntryOffset(dv.getUint32(i * 8), dv.getUint32(i * 8 + 4));
    if (off === 0) return 0;
    if (off % this.clusterSize !== 0) throw new CorruptImage(`L1 entry ${i} points to misaligned L2 table offset ${off}`, { file: this.file });
    if (off + this.clusterSize > imageSize) throw new CorruptImage(`L1 entry ${i} points to L2 table at ${off}, past the end of the file (${imageSize} bytes)`, { file: this.file });
    return off;
  }

  async loadL2(off: number): Promise<L2Table> {
    const hit = this.cache.get(off);
    if (hit) {
      this.cache.delete(off);
      this.cache.set(off, hit);
      return hit;
    }
    const buf = new Uint8Array(this.clusterSize);
    const n = await this.src.read(buf, off);
    if (n !== this.clusterSize) throw new CorruptImage(`L2 table at ${off} is truncated`, { file: this.file, offset: off });
    const t = { offset: off, buf, dv: new DataView(buf.buffer) };
    this.cache.set(off, t);
    if (this.cache.size > this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    return t;
  }

  /** Replaces a cached table (after writing it elsewhere) or drops it. */
  setCached(t: L2Table | null, dropOffset?: number): void {
    if (dropOffset !== undefined) this.cache.delete(dropOffset);
    if (t) this.cache.set(t.offset, t);
  }

  dropCache(): void { this.cache.clear(); }

  /** The L2 table for guest offset `pos`, or null when its L1 entry is empty or out of range. */
  async l2For(pos: number): Promise<L2Table | null> {
    const i = Math.floor(pos / this.l1Span);
    if (i >= this.l1Size) return null;
    const off = this.l2Offset(i, this.src.size);
    return off === 0 ? null : this.loadL2(off);
  }

  /** Walks [offset, offset+length), calling `visit` for each differently stored piece. */
  async walk(offset: number, length: number, visit: SegVisitor): Promise<void> {
    const end = offset + length;
    let pos = offset;
    // Small clusters mean many L2 tables per read: load the uncached ones in parallel first.
    const firstL1 = Math.floor(offset / this.l1Span), lastL1 = Math.min(this.l1Size - 1, Math.floor((end - 1) / this.l1Span));
    if (lastL1 > firstL1) {
      const loads: Promise<L2Table>[] = [];
      for (let i = firstL1; i <= lastL1 && loads.length < 256; i++) {
        const off = this.l2Offset(i, this.src.size);
        if (off !== 0 && !this.cache.has(off)) loads.push(this.loadL2(off));
      }
      await Promise.all(loads);
    }
    while (pos < end) {
      const spanEnd = Math.min(end, (Math.floor(pos / this.l1Span) + 1) * this.l1Span);
      const l2 = await this.l2For(pos);
      if (!l2) { visit(SEG_UNALLOC, pos, spanEnd - pos, 0, 0, 0); pos = spanEnd; continue; }
      this.walkL2(l2, pos, spanEnd, visit);
      pos = spanEnd;
    }
  }

  /** Synchronous part of the walk within one L2 table. */
  walkL2(l2: L2Table, pos: number, spanEnd: number, visit: SegVisitor): void {
    const cs = this.clusterSize, cb = this.geo.clusterBits, dv = l2.dv;
    const ext = this.geo.extendedL2, extData = this.geo.externalData;
    const dataSize = this.dataSize();
    while (pos < spanEnd) {
      const ci = Math.floor(pos / cs);
      const inOff = pos - ci * cs;
      const n = Math.min(cs - inOff, spanEnd - pos);
      const idx = (ci % this.l2Entries) * this.entryBytes;
      const hi = dv.getUint32(idx), lo = dv.getUint32(idx + 4);
      if (hi & HI_COMPRESSED) {
        if (extData) throw this.corrupt('compressed cluster in an image with an external data file', l2, idx);
        const { coff, csize } = compressedDesc(hi, lo, cb);
        if (coff >= dataSize) throw this.corrupt(`compressed cluster at guest offset ${ci * cs} points past the end of the file (host offset ${coff})`, l2, idx);
        visit(SEG_COMPRESSED, pos, n, coff, csize, inOff);
        pos += n;
        continue;
      }
      const host = (hi & HI_OFFSET_MASK) * TWO32 + ((lo & LO_OFFSET_MASK) >>> 0);
      const hasHost = host !== 0 || (extData && (hi & HI_COPIED) !== 0);
      if (hasHost) {
        if (host % cs !== 0) throw this.corrupt(`L2 entry for guest offset ${ci * cs} points to misaligned host offset ${host}`, l2, idx);
        if (host >= dataSize) throw this.corrupt(`L2 entry for guest offset ${ci * cs} points past the end of the file (host offset ${host}, file size ${dataSize})`, l2, idx);
      }
      if (!ext) {
        if (lo & 1) visit(SEG_ZERO, pos, n, 0, 0, inOff);
        else if (!hasHost) visit(SEG_UNALLOC, pos, n, 0, 0, inOff);
        else visit(SEG_DATA, pos, n, host + inOff, 0, inOff);
        pos += n;
        continue;
      }
      const zero = dv.getUint32(idx + 8), alloc = dv.getUint32(idx + 12);
      if (alloc & zero) throw this.corrupt(`extended L2 entry for guest offset ${ci * cs} marks subclusters both allocated and zero`, l2, idx);
      if (!hasHost && alloc !== 0) throw this.corrupt(`extended L2 entry for guest offset ${ci * cs} has allocated subclusters but no host offset`, l2, idx);
      const sub = cs / 32;
      let p = pos;
      const stop = pos + n;
      while (p < stop) {
        const sc = Math.floor((p - ci * cs) / sub);
        const kind: SegKind = (alloc >>> sc) & 1 ? SEG_DATA : (zero >>> sc) & 1 ? SEG_ZERO : SEG_UNALLOC;
        let sc2 = sc + 1;
        while (sc2 < 32 && sc2 * sub < stop - ci * cs) {
          const k2: SegKind = (alloc >>> sc2) & 1 ? SEG_DATA : (zero >>> sc2) & 1 ? SEG_ZERO : SEG_UNALLOC;
          if (k2 !== kind) break;
          sc2++;
        }
        const segEnd = Math.min(stop, ci * cs + sc2 * sub);
        visit(kind, p, segEnd - p, kind === SEG_DATA ? host + (p - ci * cs) : 0, 0, p - ci * cs);
        p = segEnd;
      }
      pos = stop;
    }
  }

  private corrupt(msg: string, l2: L2Table, idx: number): CorruptImage {
    return new CorruptImage(msg, { file: this.file, offset: l2.offset + idx });
  }
}
