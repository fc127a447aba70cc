// A hosted sparse extent (monolithicSparse, streamOptimized, twoGbMaxExtentSparse
// pieces): header validation, the grain directory, grain tables on demand, and the
// per-grain lookups the device turns into coalesced reads.

import type { ByteSource } from '../../io/source.js';
import { CorruptImage, UnsupportedFeature } from '../../errors.js';
import {
  COMPRESSION_DEFLATE, COMPRESSION_NONE, FLAG_COMPRESSED, FLAG_MARKERS, FLAG_ZERO_GRAIN, MARKER_EOS, MARKER_FOOTER,
  SECTOR, type SparseHeader, parseSparseHeader,
} from './header.js';

/** Grains above 32 MiB or tables above 64 Ki entries are not something any writer makes. */
const MAX_GRAIN_SECTORS = 65536;
const MAX_GTES_PER_GT = 65536;
/** 32 MiB of grain directory covers 256 TiB at the default geometry. */
const MAX_GD_BYTES = 32 * 1024 * 1024;
/** 2^53 bytes is where JavaScript numbers stop being exact. */
export const MAX_CAPACITY_SECTORS = 2 ** 44;
/** GT cache: 4096 tables of 2 KiB = 8 MiB at the default geometry. */
const GT_CACHE_BYTES = 8 * 1024 * 1024;

/** GTE value meaning "zeroed grain" when FLAG_ZERO_GRAIN is set. */
export const GTE_ZERO = 1;

export class SparseExtent {
  readonly grainBytes: number;
  readonly compressed: boolean;
  readonly markers: boolean;
  readonly zeroGrains: boolean;
  /** Bytes covered by the header's capacity. */
  readonly capacityBytes: number;
  private gtBytes: number;
  private gtCache = new Map<number, Uint32Array>();
  private gtCacheMax: number;

  private constructor(readonly src: ByteSource, readonly header: SparseHeader, private gd: Uint32Array) {
    this.grainBytes = header.grainSize * SECTOR;
    this.compressed = (header.flags & FLAG_COMPRESSED) !== 0 && header.compressAlgorithm === COMPRESSION_DEFLATE;
    this.markers = (header.flags & FLAG_MARKERS) !== 0;
    this.zeroGrains = (header.flags & FLAG_ZERO_GRAIN) !== 0;
    this.capacityBytes = header.capacity * SECTOR;
    this.gtBytes = header.numGTEsPerGT * 4;
    this.gtCacheMax = Math.max(16, Math.floor(GT_CACHE_BYTES / this.gtBytes));
  }

  get name(): string { return this.src.name; }

  /** Reads and validates the header (and footer for stream-optimized files), and loads the grain directory. */
  static async open(src: ByteSource, headBytes?: Uint8Array): Promise<SparseExtent> {
    const file = src.name;
    let head = headBytes;
    if (!head || head.length < SECTOR) {
      head = new Uint8Array(SECTOR);
      if (await src.read(head, 0) < SECTOR) throw new CorruptImage('VMDK sparse extent is shorter than its header', { file });
    }
    let h = parseSparseHeader(head);
    let gdEntriesOverride: number | undefined;
    if (!h) {
      const cowd = parseCowdHeader(head);
      if (!cowd) throw new CorruptImage('not a VMDK sparse extent (bad magic)', { file });
      ({ header: h, gdEntries: gdEntriesOverride } = cowd);
    }
    if (gdEntriesOverride === undefined && (h.version < 1 || h.version > 3)) throw new UnsupportedFeature(`VMDK sparse extent version ${h.version}`, { file });
    if (h.gdOffset === -1) {
      // Stream-optimized written front to back: the footer (a header copy) sits before
      // the end-of-stream marker: footer marker, footer, EOS marker = the last 3 sectors.
      if (src.size < 4 * SECTOR) throw new CorruptImage('VMDK stream-optimized file too short for a footer', { file });
      const tail = new Uint8Array(3 * SECTOR);
      const at = src.size - 3 * SECTOR;
      if (await src.read(tail, at) < tail.length) throw new CorruptImage('VMDK footer cannot be read', { file, offset: at });
      const dv = new DataView(tail.buffer);
      const footer = parseSparseHeader(tail.subarray(SECTOR, 2 * SECTOR));
      if (dv.getUint32(8, true) !== 0 || dv.getUint32(12, true) !== MARKER_FOOTER || !footer
        || dv.getBigUint64(2 * SECTOR, true) !== 0n || dv.getUint32(2 * SECTOR + 12, true) !== MARKER_EOS) {
        throw new CorruptImage('VMDK header says the grain directory is at the end, but there is no valid footer (truncated stream?)', { file, offset: at });
      }
      if (footer.gdOffset === -1) throw new CorruptImage('VMDK footer does not give the grain directory offset', { file, offset: at + SECTOR });
      h = footer;
    }
    if (h.compressAlgorithm !== COMPRESSION_NONE && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
      throw new UnsupportedFeature(`VMDK compression algorithm ${h.compressAlgorithm}`, { file });
    }
    if ((h.flags & FLAG_COMPRESSED) !== 0 && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
      throw new CorruptImage('VMDK header flags compressed grains but names no compression algorithm', { file });
    }
    if (h.grainSize < 1 || h.grainSize > MAX_GRAIN_SECTORS || (h.grainSize & (h.grainSize - 1)) !== 0) {
      throw new CorruptImage(`VMDK grain size ${h.grainSize} sectors is not a power of two up to ${MAX_GRAIN_SECTORS}`, { file, offset: 20 });
    }
    if (h.numGTEsPerGT < 1 || h.numGTEsPerGT > MAX_GTES_PER_GT) {
      throw new CorruptImage(`VMDK grain table size ${h.numGTEsPerGT} entries is out of range`, { file, offset: 44 });
    }
    if (h.capacity > MAX_CAPACITY_SECTORS) throw new CorruptImage(`VMDK capacity ${h.capacity} sectors is too large`, { file, offset: 12 });
    const gtCoverage = h.numGTEsPerGT * h.grainSize;
    const gdEntries = gdEntriesOverride ?? Math.ceil(h.capacity / gtCoverage);
    const gdBytes = gdEntries * 4;
    if (gdBytes > MAX_GD_BYTES) throw new CorruptImage(`VMDK grain directory of ${gdEntries} entries exceeds the ${MAX_GD_BYTES / 4} entry limit`, { file });
    const gdAt = h.gdOffset * SECTOR;
    if (gdEntries > 0 && (h.gdOffset < 1 || gdAt + gdBytes > src.size)) {
      throw new CorruptImage(`VMDK grain directory at sector ${h.gdOffset} (${gdEntries} entries) lies outside the file`, { file, offset: 56 });
    }
    const gd = new Uint32Array(gdEntries);
    if (gdEntries > 0) {
      const raw = new Uint8Array(gdBytes);
      if (await src.read(raw, gdAt) < gdBytes) throw new CorruptImage('VMDK grain directory is truncated', { file, offset: gdAt });
      const dv = new DataView(raw.buffer);
      const gtSectors = Math.ceil(h.numGTEsPerGT * 4 / SECTOR);
      for (let i = 0; i < gdEntries; i++) {
        const v = dv.getUint32(i * 4, true);
        if (v !== 0 && (v * SECTOR + gtSectors * SECTOR > src.size)) {
          throw new CorruptImage(`VMDK grain directory entry ${i} points to sector ${v}, past the end of the file`, { file, offset: gdAt + i * 4 });
        }
        gd[i] = v;
      }
    }
    return new SparseExtent(src, h, gd);
  }

  /** The grain table entries for grains [first, first+count) of this extent; out-of-range grains read as 0 (unallocated). */
  async grainEntries(first: number, count: number, out: Uint32Array = new Uint32Array(count)): Promise<Uint32Array> {
    const per = this.header.numGTEsPerGT;
    let i = 0;
    while (i < count) {
      const g = first + i;
      const gdi = Math.floor(g / per);
      const inGt = g - gdi * per;
      const n = Math.min(per - inGt, count - i);
      const gt = gdi < this.gd.length && this.gd[gdi] !== 0 ? await this.table(gdi) : null;
      if (gt) out.set(gt.subarray(inGt, inGt + n), i);
      else out.fill(0, i, i + n);
      i += n;
    }
    return out;
  }

  private async table(gdi: number): Promise<Uint32Array> {
    const hit = this.gtCache.get(gdi);
    if (hit) return hit;
    // Tables written together sit back to back: read a run of them in one go.
    const gtStride = Math.ceil(this.gtBytes / SECTOR);
    let n = 1;
    while (n < 64 && gdi + n < this.gd.length && this.gd[gdi + n] === this.gd[gdi]! + n * gtStride && !this.gtCache.has(gdi + n)) n++;
    const at = this.gd[gdi]! * SECTOR;
    const span = (n - 1) * gtStride * SECTOR + this.gtBytes;
    const raw = new Uint8Array(span);
    if (await this.src.read(raw, at) < span) throw new CorruptImage(`VMDK grain table ${gdi} is truncated`, { file: this.name, offset: at });
    if (this.gtCache.size + n > this.gtCacheMax) this.gtCache.clear();
    const dv = new DataView(raw.buffer);
    let result: Uint32Array | undefined;
    for (let k = 0; k < n; k++) {
      const t = new Uint32Array(this.header.numGTEsPerGT);
      const base = k * gtStride * SECTOR;
      for (let e = 0; e < t.length; e++) t[e] = dv.getUint32(base + e * 4, true);
      this.gtCache.set(gdi + k, t);
      if (k === 0) result = t;
    }
    return result!;
  }

  /** Classifies a GTE. */
  kindOf(gte: number): 'unallocated' | 'zero' | 'data' {
    if (gte === 0) return 'unallocated';
    if (gte === GTE_ZERO && this.zeroGrains) return 'zero';
    return 'data';
  }

  /** Embedded descriptor bytes, or null. */
  async embeddedDescriptor(maxBytes: number): Promise<Uint8Array | null> {
    const h = this.header;
    if (h.descriptorOffset <= 0 || h.descriptorSize <= 0) return null;
    const len = h.descriptorSize * SECTOR;
    if (len > maxBytes) throw new CorruptImage(`VMDK embedded descriptor of ${len} bytes exceeds the ${maxBytes} byte limit`, { file: this.name, offset: 36 });
    const at = h.descriptorOffset * SECTOR;
    if (at + len > this.src.size) throw new CorruptImage('VMDK embedded descriptor lies outside the file', { file: this.name, offset: 28 });
    const b = new Uint8Array(len);
    await this.src.read(b, at);
    return b;
  }
}

/** "COWD" as a little-endian uint32: the ESX sparse extent of vmfsSparse disks. */
export const COWD_MAGIC = 0x44574f43;

/**
 * The ESX Server sparse extent header (vmfsSparse / VMFSSPARSE extents): 32-bit fields,
 * grain tables of 4096 entries, the directory size given explicitly.
 */
export function parseCowdHeader(b: Uint8Array): { header: SparseHeader; gdEntries: number } | null {
  if (b.length < SECTOR) return null;
  const dv = new DataView(b.buffer, b.byteOffset, SECTOR);
  if (dv.getUint32(0, true) !== COWD_MAGIC) return null;
  return {
    header: {
      version: dv.getUint32(4, true),
      flags: 0,
      capacity: dv.getUint32(12, true),
      grainSize: dv.getUint32(16, true),
      descriptorOffset: 0,
      descriptorSize: 0,
      numGTEsPerGT: 4096,
      rgdOffset: 0,
      gdOffset: dv.getUint32(20, true),
      overHead: 0,
      uncleanShutdown: 0,
      compressAlgorithm: COMPRESSION_NONE,
    },
    gdEntries: dv.getUint32(24, true),
  };
}
