// The qcow2 header and its extensions: parsing with validation against the file size
// and hard caps (before anything is allocated from header fields), and serialization
// for the writer.

import { CorruptImage, UnsupportedFeature } from '../../errors.js';
import {
  QCOW2_MAGIC, V2_HEADER_LENGTH, V3_HEADER_LENGTH, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS,
  INCOMPAT_KNOWN, INCOMPAT_COMPRESSION, INCOMPAT_EXTL2, INCOMPAT_DIRTY,
  EXT_END, EXT_BACKING_FORMAT, EXT_FEATURE_TABLE, EXT_DATA_FILE,
  MAX_L1_BYTES, MAX_REFTABLE_BYTES, MAX_SNAPSHOTS, MAX_BACKING_NAME, MAX_SAFE_OFFSET, TWO32,
  COMPRESSION_ZLIB, COMPRESSION_ZSTD, COMPAT_LAZY_REFCOUNTS, V3_HEADER_WRITE_LENGTH,
} from './constants.js';

export interface HeaderExtension { type: number; data: Uint8Array }

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  clusterSize: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  /** Low 32 bits of each feature bitmap (the only ones with defined meanings). */
  incompatible: number;
  compatible: number;
  autoclear: number;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
  backingFile?: string;
  backingFormat?: string;
  dataFile?: string;
  /** Extensions we do not interpret, kept so a rewrite can preserve them. */
  otherExtensions: HeaderExtension[];
  /** Byte offset just past the end-of-extensions marker. */
  extensionsEnd: number;
}

/** Reads a 64-bit big-endian unsigned value as a number; CorruptImage if it is not exact. */
export function u64(dv: DataView, off: number, what: string, file: string, base = 0): number {
  const hi = dv.getUint32(off), lo = dv.getUint32(off + 4);
  const v = hi * TWO32 + lo;
  if (v > MAX_SAFE_OFFSET) throw new CorruptImage(`${what} ${BigInt(hi) * 2n ** 32n + BigInt(lo)} is too large`, { file, offset: base + off });
  return v;
}

export function putU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, Math.floor(v / TWO32));
  dv.setUint32(off + 4, v >>> 0);
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Just enough of the header to know how much more to read. */
export function peekClusterBits(head: Uint8Array): number | undefined {
  if (head.length < 24) return undefined;
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(0) !== QCOW2_MAGIC) return undefined;
  return dv.getUint32(20);
}

function featureNames(table: Uint8Array | undefined, kind: number, bits: number[]): string[] {
  return bits.map((bit) => {
    if (table) {
      for (let i = 0; i + 48 <= table.length; i += 48) {
        if (table[i] === kind && table[i + 1] === bit) {
          const raw = table.subarray(i + 2, i + 48);
          const end = raw.indexOf(0);
          return `${bit} (${decoder.decode(end >= 0 ? raw.subarray(0, end) : raw)})`;
        }
      }
    }
    return String(bit);
  });
}

/**
 * Parses and validates the header. `head` holds the first min(cluster size, file size)
 * bytes of the file.
 */
export function parseHeader(head: Uint8Array, fileSize: number, file: string): Qcow2Header {
  const bad = (msg: string, offset?: number) => new CorruptImage(msg, { file, offset });
  if (head.length < V2_HEADER_LENGTH) throw bad(`file too short for a qcow2 header (${fileSize} bytes)`, 0);
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (dv.getUint32(0) !== QCOW2_MAGIC) throw bad('not a qcow2 image (bad magic)', 0);
  const version = dv.getUint32(4);
  if (version !== 2 && version !== 3) throw new UnsupportedFeature(`unsupported qcow2 version ${version}`, { file, offset: 4 });
  const clusterBits = dv.getUint32(20);
  if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
    throw bad(`cluster_bits ${clusterBits} out of range ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS}`, 20);
  }
  const clusterSize = 2 ** clusterBits;
  const h: Qcow2Header = {
    version,
    backingFileOffset: u64(dv, 8, 'backing_file_offset', file),
    backingFileSize: dv.getUint32(16),
    clusterBits, clusterSize,
    size: u64(dv, 24, 'virtual size', file),
    cryptMethod: dv.getUint32(32),
    l1Size: dv.getUint32(36),
    l1TableOffset: u64(dv, 40, 'l1_table_offset', file),
    refcountTableOffset: u64(dv, 48, 'refcount_table_offset', file),
    refcountTableClusters: dv.getUint32(56),
    nbSnapshots: dv.getUint32(60),
    snapshotsOffset: u64(dv, 64, 'snapshots_offset', file),
    incompatible: 0, compatible: 0, autoclear: 0,
    refcountOrder: 4,
    headerLength: V2_HEADER_LENGTH,
    compressionType: COMPRESSION_ZLIB,
    otherExtensions: [],
    extensionsEnd: V2_HEADER_LENGTH,
  };
  let incompatHi = 0;
  if (version === 3) {
    if (head.length < V3_HEADER_LENGTH) throw bad('file too short for a qcow2 v3 header', 0);
    incompatHi = dv.getUint32(72);
    h.incompatible = dv.getUint32(76);
    h.compatible = dv.getUint32(84);
    h.autoclear = dv.getUint32(92);
    h.refcountOrder = dv.getUint32(96);
    h.headerLength = dv.getUint32(100);
    if (h.headerLength < V3_HEADER_LENGTH || h.headerLength % 8 !== 0 || h.headerLength > Math.min(clusterSize, head.length)) {
      throw bad(`invalid header_length ${h.headerLength}`, 100);
    }
    if (h.headerLength > 104) h.compressionType = head[104]!;
    if (h.refcountOrder > 6) throw bad(`refcount_order ${h.refcountOrder} exceeds 6`, 96);
  }

  // Extensions come before anything that depends on them (feature names, formats).
  parseExtensions(h, head, dv, file);

  const unknownLo = h.incompatible & ~INCOMPAT_KNOWN;
  if (incompatHi !== 0 || unknownLo !== 0) {
    const bits: number[] = [];
    for (let b = 0; b < 32; b++) if (unknownLo & (1 << b)) bits.push(b);
    for (let b = 0; b < 32; b++) if (incompatHi & (1 << b)) bits.push(b + 32);
    const table = h.otherExtensions.find((e) => e.type === EXT_FEATURE_TABLE)?.data;
    throw new UnsupportedFeature(`unsupported incompatible qcow2 feature bit(s): ${featureNames(table, 0, bits).join(', ')}`, { file, offset: 72 });
  }
  if (h.cryptMethod !== 0) {
    throw new UnsupportedFeature(`encrypted qcow2 images are not supported (crypt_method ${h.cryptMethod}${h.cryptMethod === 1 ? ', AES' : h.cryptMethod === 2 ? ', LUKS' : ''})`, { file, offset: 32 });
  }
  if (h.incompatible & INCOMPAT_COMPRESSION) {
    if (h.headerLength <= 104 || h.compressionType === COMPRESSION_ZLIB) throw bad('compression type bit set but compression_type is zlib or absent', 104);
  } else if (h.compressionType !== COMPRESSION_ZLIB) {
    throw bad(`compression_type ${h.compressionType} without the compression type feature bit`, 104);
  }
  if (h.compressionType !== COMPRESSION_ZLIB && h.compressionType !== COMPRESSION_ZSTD) {
    throw new UnsupportedFeature(`unknown compression type ${h.compressionType}`, { file, offset: 104 });
  }
  if ((h.incompatible & INCOMPAT_EXTL2) && clusterBits < 14) throw bad('extended L2 entries need clusters of at least 16 KiB', 20);

  const l2Entries = clusterSize / ((h.incompatible & INCOMPAT_EXTL2) ? 16 : 8);
  const guestBytesPerL1 = clusterSize * l2Entries;
  if (h.size > (MAX_L1_BYTES / 8) * guestBytesPerL1) throw bad(`virtual size ${h.size} needs an L1 table larger than ${MAX_L1_BYTES} bytes`, 24);
  const l1Needed = Math.ceil(h.size / guestBytesPerL1);
  if (h.l1Size * 8 > MAX_L1_BYTES) throw bad(`L1 table size ${h.l1Size} entries exceeds ${MAX_L1_BYTES / 8}`, 36);
  if (h.l1Size < l1Needed) throw bad(`L1 table too small (${h.l1Size} entries, virtual size needs ${l1Needed})`, 36);
  checkTable(h.l1TableOffset, h.l1Size * 8, 'L1 table', 40);
  if (h.refcountTableClusters === 0) throw bad('refcount table has no clusters', 56);
  if (h.refcountTableClusters * clusterSize > MAX_REFTABLE_BYTES) throw bad(`refcount table of ${h.refcountTableClusters} clusters exceeds ${MAX_REFTABLE_BYTES} bytes`, 56);
  checkTable(h.refcountTableOffset, h.refcountTableClusters * clusterSize, 'refcount table', 48);
  if (h.nbSnapshots > MAX_SNAPSHOTS) throw bad(`${h.nbSnapshots} snapshots exceed the limit of ${MAX_SNAPSHOTS}`, 60);
  if (h.nbSnapshots > 0) checkTable(h.snapshotsOffset, h.nbSnapshots * 40, 'snapshot table', 64);

  if (h.backingFileOffset !== 0) {
    if (h.backingFileSize > MAX_BACKING_NAME) throw bad(`backing file name of ${h.backingFileSize} bytes is too long`, 16);
    if (h.backingFileOffset + h.backingFileSize > Math.min(clusterSize, head.length)) throw bad('backing file name lies outside the header cluster', 8);
    h.backingFile = decoder.decode(head.subarray(h.backingFileOffset, h.backingFileOffset + h.backingFileSize));
  }
  return h;

  function checkTable(offset: number, bytes: number, what: string, field: number): void {
    if (bytes === 0) return;
    if (offset % clusterSize !== 0) throw bad(`${what} offset ${offset} is not cluster aligned`, field);
    if (offset === 0) throw bad(`${what} overlaps the header`, field);
    if (offset + bytes > fileSize) throw bad(`${what} (${bytes} bytes at ${offset}) extends past the end of the file (${fileSize} bytes)`, field);
  }
}

function parseExtensions(h: Qcow2Header, head: Uint8Array, dv: DataView, file: string): void {
  let off = h.headerLength;
  // The extension area ends at the backing file name, or at the end of the cluster.
  const limit = Math.min(h.clusterSize, head.length, h.backingFileOffset > off ? h.backingFileOffset : Infinity);
  const seen = new Set<number>();
  for (;;) {
    if (off + 8 > limit) {
      // v2 images written by old tools may have no end marker when nothing follows.
      if (off >= limit) break;
      throw new CorruptImage('header extension area is truncated', { file, offset: off });
    }
    const type = dv.getUint32(off);
    const len = dv.getUint32(off + 4);
    if (type === EXT_END) { off += 8; break; }
    const dataEnd = off + 8 + len;
    if (dataEnd > limit) throw new CorruptImage(`header extension 0x${type.toString(16)} of ${len} bytes extends past the header area`, { file, offset: off });
    const data = head.slice(off + 8, dataEnd);
    if (seen.has(type) && type !== EXT_FEATURE_TABLE) throw new CorruptImage(`duplicate header extension 0x${type.toString(16)}`, { file, offset: off });
    seen.add(type);
    switch (type) {
      case EXT_BACKING_FORMAT: h.backingFormat = decoder.decode(data); break;
      case EXT_DATA_FILE: h.dataFile = decoder.decode(data); break;
      default: h.otherExtensions.push({ type, data });
    }
    off = off + 8 + Math.ceil(len / 8) * 8;
  }
  h.extensionsEnd = off;
}

export interface NewHeaderSpec {
  version: 2 | 3;
  clusterBits: number;
  size: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots?: number;
  snapshotsOffset?: number;
  refcountOrder: number;
  compressionType: number;
  extendedL2: boolean;
  lazyRefcounts: boolean;
  dirty?: boolean;
  backingFile?: string;
  backingFormat?: string;
}

const encoder = new TextEncoder();

/** Serializes a header with its extensions and backing file name into one cluster. */
export function serializeHeader(s: NewHeaderSpec, file: string): Uint8Array {
  const clusterSize = 2 ** s.clusterBits;
  const buf = new Uint8Array(clusterSize);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, QCOW2_MAGIC);
  dv.setUint32(4, s.version);
  dv.setUint32(20, s.clusterBits);
  putU64(dv, 24, s.size);
  dv.setUint32(36, s.l1Size);
  putU64(dv, 40, s.l1TableOffset);
  putU64(dv, 48, s.refcountTableOffset);
  dv.setUint32(56, s.refcountTableClusters);
  dv.setUint32(60, s.nbSnapshots ?? 0);
  putU64(dv, 64, s.snapshotsOffset ?? 0);
  let off = V2_HEADER_LENGTH;
  if (s.version === 3) {
    let incompat = 0;
    if (s.dirty) incompat |= INCOMPAT_DIRTY;
    if (s.compressionType !== COMPRESSION_ZLIB) incompat |= INCOMPAT_COMPRESSION;
    if (s.extendedL2) incompat |= INCOMPAT_EXTL2;
    dv.setUint32(76, incompat);
    dv.setUint32(84, s.lazyRefcounts ? COMPAT_LAZY_REFCOUNTS : 0);
    dv.setUint32(96, s.refcountOrder);
    dv.setUint32(100, V3_HEADER_WRITE_LENGTH);
    buf[104] = s.compressionType;
    off = V3_HEADER_WRITE_LENGTH;
  }
  const ext = (type: number, data: Uint8Array) => {
    const padded = Math.ceil(data.length / 8) * 8;
    if (off + 8 + padded + 8 > clusterSize) throw new CorruptImage('header extensions do not fit in the first cluster', { file });
    dv.setUint32(off, type);
    dv.setUint32(off + 4, data.length);
    buf.set(data, off + 8);
    off += 8 + padded;
  };
  if (s.backingFormat) ext(EXT_BACKING_FORMAT, encoder.encode(s.backingFormat));
  if (s.version === 3) ext(EXT_FEATURE_TABLE, featureTable());
  off += 8; // end marker (zeros)
  if (s.backingFile) {
    const name = encoder.encode(s.backingFile);
    if (name.length > MAX_BACKING_NAME || off + name.length > clusterSize) throw new CorruptImage(`backing file name too long (${name.length} bytes)`, { file });
    putU64(dv, 8, off);
    dv.setUint32(16, name.length);
    buf.set(name, off);
    off += name.length;
  }
  return buf;
}

/** The feature name table qemu writes, so tools that do not know a bit can name it. */
function featureTable(): Uint8Array {
  const names: Array<[number, number, string]> = [
    [0, 0, 'dirty bit'], [0, 1, 'corrupt bit'], [0, 2, 'external data file'],
    [0, 3, 'compression type'], [0, 4, 'extended L2 entries'],
    [1, 0, 'lazy refcounts'], [2, 0, 'bitmaps'], [2, 1, 'raw external data'],
  ];
  const t = new Uint8Array(names.length * 48);
  names.forEach(([kind, bit, name], i) => {
    t[i * 48] = kind;
    t[i * 48 + 1] = bit;
    t.set(encoder.encode(name), i * 48 + 2);
  });
  return t;
}

/** Human name of the compression type (qemu-img info spelling). */
export function compressionName(t: number): 'zlib' | 'zstd' {
  return t === COMPRESSION_ZSTD ? 'zstd' : 'zlib';
}

