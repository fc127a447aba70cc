// qcow2 (versions 2 and 3): header, header extensions, backing and data file names,
// feature bits, and the bounds of L1, refcount and snapshot tables (plus the L2 tables
// and snapshot entries that lie in the kept head).
import type { FormatChecker, Report } from '../types.js';
import { type ImageView, HUGE, fit, ascii, bytesEq, has, slice, u16be, u32be, u64be, printable, floorTo } from '../view.js';
import { dangerousName } from '../refs.js';

const MAGIC = 'QFI\xfb';
const EXT_END = 0;
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_TABLE = 0x6803f857;
const EXT_CRYPTO = 0x0537be77;
const EXT_BITMAPS = 0x23852875;
const EXT_DATA_FILE = 0x44415441;

const INCOMPAT_DIRTY = 1;
const INCOMPAT_CORRUPT = 2;
const INCOMPAT_DATA_FILE = 4;
const INCOMPAT_COMPRESSION = 8;
const INCOMPAT_EXTL2 = 16;
const INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

/** qemu's limits: QCOW_MAX_L1_SIZE (32 MiB), refcount table 8 MiB, 65536 snapshots. */
const MAX_L1_BYTES = 32 * 1024 * 1024;
const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
const MAX_SNAPSHOTS = 65536;
const MAX_L2_TABLES_CHECKED = 4096;

interface Header {
  version: number;
  backingOffset: number;
  backingSize: number;
  clusterBits: number;
  clusterSize: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1Offset: number;
  rtOffset: number;
  rtClusters: number;
  nbSnapshots: number;
  snapOffset: number;
  incompatHi: number;
  incompatLo: number;
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
}

function parseHeader(b: Uint8Array): Header | null {
  if (!has(b, 0, 72)) return null;
  const version = u32be(b, 4);
  const h: Header = {
    version,
    backingOffset: u64be(b, 8),
    backingSize: u32be(b, 16),
    clusterBits: u32be(b, 20),
    clusterSize: 0,
    size: u64be(b, 24),
    cryptMethod: u32be(b, 32),
    l1Size: u32be(b, 36),
    l1Offset: u64be(b, 40),
    rtOffset: u64be(b, 48),
    rtClusters: u32be(b, 56),
    nbSnapshots: u32be(b, 60),
    snapOffset: u64be(b, 64),
    incompatHi: 0,
    incompatLo: 0,
    refcountOrder: 4,
    headerLength: 72,
    compressionType: 0,
  };
  h.clusterSize = h.clusterBits >= 9 && h.clusterBits <= 21 ? 2 ** h.clusterBits : 0;
  if (version >= 3) {
    if (!has(b, 0, 104)) return null;
    h.incompatHi = u32be(b, 72);
    h.incompatLo = u32be(b, 76);
    h.refcountOrder = u32be(b, 96);
    h.headerLength = u32be(b, 100);
    if (h.headerLength > 104 && has(b, 104, 1)) h.compressionType = b[104]!;
  }
  return h;
}

function extL2(h: Header): boolean { return (h.incompatLo & INCOMPAT_EXTL2) !== 0; }

/** Host offset of a standard (non-compressed) L1/L2 entry: bits 9..55. */
function stdOffset(b: Uint8Array, off: number): number {
  return (u32be(b, off) & 0x00ffffff) * 0x100000000 + (u32be(b, off + 4) & 0xfffffe00) ;
}

export { backingFinding };

export const qcow2: FormatChecker = {
  name: 'qcow2',
  match(v) { return bytesEq(v.head, 0, MAGIC) && !(has(v.head, 4, 4) && u32be(v.head, 4) === 1); },

  need(head) {
    const h = parseHeader(head);
    if (!h) return 104;
    if (!h.clusterSize) return 0;
    let need = h.clusterSize; // header extensions and the backing file name live in the first cluster
    const l1End = h.l1Offset + Math.min(h.l1Size, MAX_L1_BYTES / 8) * 8;
    need = Math.max(need, fit(l1End));
    need = Math.max(need, fit(h.rtOffset + Math.min(h.rtClusters * h.clusterSize, MAX_REFTABLE_BYTES)));
    if (h.nbSnapshots > 0 && h.snapOffset < HUGE) need = Math.max(need, fit(snapshotTableEnd(head, h)));
    // L2 tables named by the part of the L1 table that is already in the head.
    if (h.l1Offset + 8 <= head.length) {
      const n = Math.min(h.l1Size, (head.length - h.l1Offset) / 8, MAX_L2_TABLES_CHECKED);
      for (let i = 0; i < n; i++) {
        const o = stdOffset(head, h.l1Offset + i * 8);
        if (o !== 0) need = Math.max(need, fit(o + h.clusterSize));
      }
    }
    return need;
  },

  inspect(v, r) {
    inspectQcow2(v, r);
  },
};

/** End of the snapshot table as far as the head lets us walk it; asks for more when it runs out. */
function snapshotTableEnd(b: Uint8Array, h: Header): number {
  let off = h.snapOffset;
  const n = Math.min(h.nbSnapshots, MAX_SNAPSHOTS);
  for (let i = 0; i < n; i++) {
    if (!has(b, off, 40)) return off + 40 + 64 * 1024;
    const extra = u32be(b, off + 36);
    const idLen = u16be(b, off + 12);
    const nameLen = u16be(b, off + 14);
    if (extra > 1024) return off; // qemu caps extra data at 1 KiB; inspect() reports it
    off += 40 + extra + idLen + nameLen;
    off = Math.ceil(off / 8) * 8;
  }
  return off;
}

function inspectQcow2(v: ImageView, r: Report): void {
  r.format = 'qcow2';
  const b = v.head;
  if (v.size < 72 || (has(b, 4, 4) && u32be(b, 4) >= 3 && v.size < 104)) {
    r.unsafe('header-cut-short', `qcow2 magic, but the file (${v.size} bytes) is shorter than a qcow2 header`);
    return;
  }
  const h = parseHeader(b)!;
  if (h.version !== 2 && h.version !== 3) {
    r.unsafe('invalid-header', `qcow2 magic with unknown version ${h.version}`, 4);
    return;
  }
  r.subformat = `v${h.version}`;
  if (!h.clusterSize) {
    r.unsafe('invalid-header', `cluster_bits ${h.clusterBits} outside 9..21`, 20);
    return;
  }
  r.clusterSize = h.clusterSize;
  r.setVirtualSize(floorTo(h.size));
  const cs = h.clusterSize;
  if (h.version === 3) {
    if (h.headerLength < 104 || h.headerLength > cs || h.headerLength % 8 !== 0) {
      r.unsafe('invalid-header', `header_length ${h.headerLength} is not a multiple of 8 between 104 and the cluster size`, 100);
    }
    if (h.refcountOrder > 6) r.unsafe('invalid-header', `refcount_order ${h.refcountOrder} > 6`, 96);
    if (h.incompatHi !== 0 || (h.incompatLo & ~INCOMPAT_KNOWN) !== 0) {
      r.unsafe('unknown-incompatible-features', `incompatible feature bits 0x${h.incompatHi.toString(16)}${(h.incompatLo >>> 0).toString(16).padStart(8, '0')} include bits this inspector does not know`, 72);
    }
    if (h.incompatLo & INCOMPAT_CORRUPT) r.unsafe('corrupt', 'the image is marked corrupt (incompatible bit 1)', 72);
    if (h.incompatLo & INCOMPAT_DIRTY) r.info('dirty', 'the image is marked dirty (refcounts may be stale)', 72);
    if ((h.incompatLo & INCOMPAT_COMPRESSION) && h.compressionType > 1) {
      r.unsafe('unknown-incompatible-features', `compression type ${h.compressionType} unknown`, 104);
    }
  }
  if (h.cryptMethod > 2) r.unsafe('invalid-header', `crypt_method ${h.cryptMethod} unknown`, 32);
  else if (h.cryptMethod !== 0) r.info('encrypted', `the image is encrypted (${h.cryptMethod === 1 ? 'AES' : 'LUKS'})`, 32);

  // Backing file name: qemu reads it from the first cluster, at most 1023 bytes.
  if (h.backingOffset !== 0) {
    const len = h.backingSize;
    if (len > 1023 || h.backingOffset + len > cs) {
      r.unsafe('invalid-header', `backing file name (offset ${h.backingOffset}, ${len} bytes) is not within the first cluster or longer than 1023 bytes`, 8);
    }
    const name = slice(v, h.backingOffset, Math.min(len, 1023));
    if (name) r.backingFile = printable(ascii(name, 0, name.length));
    // qemu treats a zero-length name as no backing file.
    if (len > 0) backingFinding(r, r.backingFile ?? '');
  }

  // Header extensions, from the end of the header to the end of the first cluster.
  let dataFileBit = (h.incompatLo & INCOMPAT_DATA_FILE) !== 0;
  let off = h.version === 3 ? h.headerLength : 72;
  // Extensions end at the backing file name when it follows them, else at the end of the cluster.
  const extLimit = Math.min(cs, b.length, v.size, h.backingOffset > off ? h.backingOffset : Infinity);
  let backingFormat: string | undefined;
  for (let i = 0; i < 1024 && off + 8 <= extLimit; i++) {
    const type = u32be(b, off);
    const len = u32be(b, off + 4);
    if (type === EXT_END) break;
    if (off + 8 + len > extLimit) {
      r.unsafe('invalid-header', `header extension 0x${type.toString(16)} (${len} bytes) runs past the first cluster`, off);
      break;
    }
    const data = b.subarray(off + 8, off + 8 + len);
    if (type === EXT_BACKING_FORMAT) backingFormat = printable(ascii(data, 0, len));
    else if (type === EXT_DATA_FILE) {
      r.dataFile = printable(ascii(data, 0, len));
      dataFileBit = true;
    } else if (type === EXT_CRYPTO && len >= 16) {
      r.within(v, 'encryption header', u64be(data, 0), u64be(data, 8));
    } else if (type !== EXT_FEATURE_TABLE && type !== EXT_BITMAPS) {
      r.info('unknown-extension', `unknown header extension 0x${type.toString(16)} (ignored, as qemu does)`, off);
    }
    off += 8 + Math.ceil(len / 8) * 8;
  }
  if (backingFormat !== undefined && h.backingOffset === 0) r.info('backing-format', `backing format '${backingFormat}' recorded without a backing file`);
  if (dataFileBit) {
    const name = r.dataFile ?? '';
    if (!r.opts.allowDataFile) {
      r.unsafe('data-file', `the image keeps its data in an external file${name ? ` '${name}'` : ''} (incompatible bit 2); it would be opened instead of this file's clusters`);
    } else {
      const why = dangerousName(name);
      if (why) r.unsafe('data-file', `external data file '${name}' is ${why}`);
    }
  }

  // L1 table.
  if (extL2(h) && h.clusterBits < 14) r.unsafe('invalid-header', 'extended L2 entries need clusters of at least 16 KiB', 20);
  for (const [what, off, used, field] of [['L1 table', h.l1Offset, h.l1Size, 40], ['refcount table', h.rtOffset, h.rtClusters, 48], ['snapshot table', h.snapOffset, h.nbSnapshots, 64]] as const) {
    if (used > 0 && off === 0) r.unsafe('invalid-header', `${what} overlaps the header`, field);
  }
  const entryBytes = extL2(h) ? 16 : 8;
  const perL2 = cs / entryBytes;
  const neededL1 = Math.ceil(h.size / (cs * perL2));
  if (h.l1Size * 8 > MAX_L1_BYTES) r.unsafe('invalid-header', `L1 table of ${h.l1Size} entries exceeds qemu's 32 MiB limit`, 36);
  if (h.l1Size < neededL1) r.unsafe('size-mismatch', `L1 table has ${h.l1Size} entries, but the virtual size needs ${neededL1}`, 36);
  if (h.l1Size > 0) {
    if (h.l1Offset % cs !== 0) r.unsafe('invalid-header', `L1 table offset ${h.l1Offset} is not cluster aligned`, 40);
    if (r.within(v, 'L1 table', h.l1Offset, h.l1Size * 8)) checkL1(v, r, h, entryBytes);
  }
  // Refcount table.
  if (h.rtClusters === 0) r.unsafe('invalid-header', 'refcount table has no clusters', 56);
  if (h.rtClusters * cs > MAX_REFTABLE_BYTES) r.unsafe('invalid-header', `refcount table of ${h.rtClusters} clusters exceeds qemu's 8 MiB limit`, 56);
  if (h.rtOffset % cs !== 0) r.unsafe('invalid-header', `refcount table offset ${h.rtOffset} is not cluster aligned`, 48);
  if (r.within(v, 'refcount table', h.rtOffset, h.rtClusters * cs)) {
    const t = slice(v, h.rtOffset, Math.min(h.rtClusters * cs, MAX_REFTABLE_BYTES));
    if (t) {
      for (let i = 0; i + 8 <= t.length; i += 8) {
        const o = u64be(t, i) - (u64be(t, i) % 512);
        if (o !== 0 && !r.within(v, `refcount block ${i / 8}`, o, cs)) break;
      }
    }
  }
  // Snapshot table.
  if (h.nbSnapshots > MAX_SNAPSHOTS) r.unsafe('invalid-header', `${h.nbSnapshots} snapshots exceed qemu's limit of ${MAX_SNAPSHOTS}`, 60);
  else if (h.nbSnapshots > 0) {
    if (h.snapOffset % cs !== 0) r.unsafe('invalid-header', `snapshot table offset ${h.snapOffset} is not cluster aligned`, 64);
    if (r.within(v, 'snapshot table', h.snapOffset, h.nbSnapshots * 40)) checkSnapshots(v, r, h);
  }
}

function backingFinding(r: Report, name: string): void {
  if (!r.opts.allowBackingFile) {
    r.unsafe('backing-file', `the image has a backing file${name ? ` '${name}'` : ''}; reading it would open that file`, 8);
    return;
  }
  const why = dangerousName(name);
  if (why) r.unsafe('backing-file', `backing file '${name}' is ${why}`, 8);
}

function checkL1(v: ImageView, r: Report, h: Header, entryBytes: number): void {
  const t = slice(v, h.l1Offset, h.l1Size * 8);
  if (!t) return;
  const cs = h.clusterSize;
  const x = 70 - h.clusterBits; // bits of a compressed cluster's host offset
  // Each distinct L2 table once: a hostile L1 may name the same 2 MiB table thousands of times.
  const seen = new Set<number>();
  for (let i = 0; i < t.length; i += 8) {
    const l2 = stdOffset(t, i);
    if (l2 === 0) continue;
    if (!r.within(v, `L2 table for L1 entry ${i / 8}`, l2, cs)) return;
    if (seen.has(l2) || seen.size >= MAX_L2_TABLES_CHECKED) continue;
    seen.add(l2);
    const l2t = slice(v, l2, cs);
    if (!l2t) continue;
    for (let j = 0; j + 8 <= l2t.length; j += entryBytes) {
      const hi = u32be(l2t, j);
      if (hi & 0x40000000) {
        // Compressed: the host offset is the low x bits.
        const off = (hi & (2 ** (x - 32) - 1)) * 0x100000000 + u32be(l2t, j + 4);
        if (off >= v.size) { r.within(v, `compressed cluster (L1 ${i / 8}, L2 ${j / entryBytes})`, off, 1); return; }
      } else {
        const off = stdOffset(l2t, j);
        if (off !== 0 && !r.within(v, `data cluster (L1 ${i / 8}, L2 ${j / entryBytes})`, off, Math.min(cs, 512))) return;
      }
    }
  }
}

function checkSnapshots(v: ImageView, r: Report, h: Header): void {
  let off = h.snapOffset;
  let end = off;
  for (let i = 0; i < h.nbSnapshots; i++) {
    const e = slice(v, off, 40);
    if (!e) {
      if (off + 40 > v.size) r.within(v, `snapshot ${i}`, off, 40);
      return; // beyond the kept head: bounds checked above only
    }
    const l1Off = u64be(e, 0);
    const l1Size = u32be(e, 8);
    const extra = u32be(e, 36);
    if (extra > 1024) { r.unsafe('invalid-header', `snapshot ${i} claims ${extra} bytes of extra data`, off); return; }
    if (l1Size * 8 > MAX_L1_BYTES) r.unsafe('invalid-header', `snapshot ${i} L1 table of ${l1Size} entries exceeds 32 MiB`, off);
    if (l1Size > 0 && !r.within(v, `snapshot ${i} L1 table`, l1Off, l1Size * 8)) return;
    off += 40 + extra + u16be(e, 12) + u16be(e, 14);
    end = off; // the last entry's padding need not be in the file
    off = Math.ceil(off / 8) * 8;
  }
  r.within(v, 'snapshot table', h.snapOffset, end - h.snapOffset);
}
