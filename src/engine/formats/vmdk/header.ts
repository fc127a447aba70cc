// The hosted sparse extent header ("KDMV", VMware Virtual Disk Format 1.1 §"Hosted
// Sparse Extent Header") and the stream-optimized markers. All integers little endian,
// offsets and sizes in 512-byte sectors.

export const SECTOR = 512;
export const SPARSE_MAGIC = 0x564d444b; // "KDMV" read as LE uint32
export const GD_AT_END = 0xffffffffffffffffn;

export const FLAG_NL_DETECT = 1 << 0;
export const FLAG_RGD = 1 << 1;
export const FLAG_ZERO_GRAIN = 1 << 2;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;

export const COMPRESSION_NONE = 0;
export const COMPRESSION_DEFLATE = 1;

export const MARKER_EOS = 0;
export const MARKER_GT = 1;
export const MARKER_GD = 2;
export const MARKER_FOOTER = 3;

export interface SparseHeader {
  version: number;
  flags: number;
  /** Sectors. */
  capacity: number;
  /** Sectors per grain. */
  grainSize: number;
  descriptorOffset: number;
  descriptorSize: number;
  numGTEsPerGT: number;
  rgdOffset: number;
  /** Sectors; -1 when the GD is at the end (GD_AT_END, footer holds the real value). */
  gdOffset: number;
  overHead: number;
  uncleanShutdown: number;
  compressAlgorithm: number;
}

function u64(dv: DataView, off: number): number {
  const v = dv.getBigUint64(off, true);
  if (v === GD_AT_END) return -1;
  // Anything past 2^53 cannot be a real offset; callers range-check the number.
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
}

/** Parses the 512-byte header; returns null when the magic does not match. */
export function parseSparseHeader(b: Uint8Array): SparseHeader | null {
  if (b.length < SECTOR) return null;
  const dv = new DataView(b.buffer, b.byteOffset, SECTOR);
  if (dv.getUint32(0, true) !== SPARSE_MAGIC) return null;
  return {
    version: dv.getUint32(4, true),
    flags: dv.getUint32(8, true),
    capacity: u64(dv, 12),
    grainSize: u64(dv, 20),
    descriptorOffset: u64(dv, 28),
    descriptorSize: u64(dv, 36),
    numGTEsPerGT: dv.getUint32(44, true),
    rgdOffset: u64(dv, 48),
    gdOffset: u64(dv, 56),
    overHead: u64(dv, 64),
    uncleanShutdown: dv.getUint8(72),
    compressAlgorithm: dv.getUint16(77, true),
  };
}

export function serializeSparseHeader(h: SparseHeader): Uint8Array {
  const b = new Uint8Array(SECTOR);
  const dv = new DataView(b.buffer);
  const big = (n: number) => (n < 0 ? GD_AT_END : BigInt(n));
  dv.setUint32(0, SPARSE_MAGIC, true);
  dv.setUint32(4, h.version, true);
  dv.setUint32(8, h.flags, true);
  dv.setBigUint64(12, big(h.capacity), true);
  dv.setBigUint64(20, big(h.grainSize), true);
  dv.setBigUint64(28, big(h.descriptorOffset), true);
  dv.setBigUint64(36, big(h.descriptorSize), true);
  dv.setUint32(44, h.numGTEsPerGT, true);
  dv.setBigUint64(48, big(h.rgdOffset), true);
  dv.setBigUint64(56, big(h.gdOffset), true);
  dv.setBigUint64(64, big(h.overHead), true);
  dv.setUint8(72, h.uncleanShutdown);
  // Newline-detection bytes: a file mangled by text-mode transfer shows up here.
  b[73] = 0x0a; b[74] = 0x20; b[75] = 0x0d; b[76] = 0x0a;
  dv.setUint16(77, h.compressAlgorithm, true);
  return b;
}

/** A metadata marker sector (GT, GD, footer, EOS): lba = numSectors of what follows, size 0, type. */
export function metadataMarker(numSectors: number, type: number): Uint8Array {
  const b = new Uint8Array(SECTOR);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(numSectors), true);
  dv.setUint32(8, 0, true);
  dv.setUint32(12, type, true);
  return b;
}
