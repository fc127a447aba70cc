// An opened qcow2 image as a BlockDevice: reads (coalesced preads, compressed clusters
// batched through the pool, backing fall-through), extents, and the optional verbs
// (write, resize, check, snapshots) which live in their own files.

import type { BlockDevice, DeviceInfo, Extent, OpenContext, SnapshotOps, CheckReport } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { CorruptImage, InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { parseHeader, peekClusterBits, compressionName, type Qcow2Header } from './header.js';
import {
  INCOMPAT_DIRTY, INCOMPAT_CORRUPT, INCOMPAT_DATA_FILE, INCOMPAT_EXTL2, COMPAT_LAZY_REFCOUNTS,
  AUTOCLEAR_DATA_FILE_RAW, MIN_CLUSTER_BITS, MAX_CLUSTER_BITS,
} from './constants.js';
import { ClusterMap, SEG_COMPRESSED, SEG_DATA, SEG_UNALLOC, SEG_ZERO, type SegKind } from './map.js';
import { decompressCluster, decompressMany } from './compressed.js';
import { readSnapshotTable, snapshotInfo, type SnapshotEntry } from './snapshot-table.js';
import type { Writer } from './write.js';

/** Compressed clusters per read() below which decompression stays on this thread. */
const INLINE_DECOMPRESS = 4;
/** Host runs at least twice this long are read with parallel preads. */
const SPLIT_MIN = 1024 * 1024;

interface HostRun { pos: number; len: number; host: number }
interface CRun { pos: number; len: number; coff: number; csize: number; inCluster: number }

export class Qcow2Device implements BlockDevice {
  readonly format = 'qcow2';
  readonly name: string;
  virtualSize: number;
  backing: BlockDevice | null = null;
  readonly map: ClusterMap;
  snapshotEntries: SnapshotEntry[] = [];
  snapshotTableBytes = 0;
  /** The in-place updater (write, resize, snapshots, repair), created on first use. */
  writer?: Writer;
  snapshots?: SnapshotOps;
  /** Set for read-only views of a snapshot: shares the source with its parent. */
  private ownsSource = true;

  constructor(
    readonly src: ByteSource,
    readonly h: Qcow2Header,
    l1: Uint8Array,
    readonly dataSrc: ByteSource,
    readonly writable: boolean,
  ) {
    this.name = src.name;
    // Like qemu, the guest sees whole 512-byte sectors.
    this.virtualSize = h.size - (h.size % 512);
    this.map = new ClusterMap(src.name, src, {
      clusterBits: h.clusterBits,
      extendedL2: (h.incompatible & INCOMPAT_EXTL2) !== 0,
      externalData: (h.incompatible & INCOMPAT_DATA_FILE) !== 0,
    }, l1, () => dataSrc.size);
  }

  get clusterSize(): number { return this.h.clusterSize; }

  static async open(src: ByteSource, ctx: OpenContext): Promise<Qcow2Device> {
    const first = new Uint8Array(Math.min(src.size, 512));
    await src.read(first, 0);
    const cb = peekClusterBits(first);
    let head = first;
    if (cb !== undefined && cb >= MIN_CLUSTER_BITS && cb <= MAX_CLUSTER_BITS && src.size > first.length) {
      head = new Uint8Array(Math.min(src.size, 2 ** cb));
      await src.read(head, 0);
    }
    const h = parseHeader(head, src.size, src.name);
    const l1 = new Uint8Array(h.l1Size * 8);
    if (l1.length && await src.read(l1, h.l1TableOffset) !== l1.length) throw new CorruptImage('L1 table is truncated', { file: src.name, offset: h.l1TableOffset });

    let dataSrc = src;
    const opened: Array<{ close(): Promise<void> }> = [];
    try {
      if (h.incompatible & INCOMPAT_DATA_FILE) {
        if (!h.dataFile) throw new UnsupportedFeature('image uses an external data file but does not name it', { file: src.name });
        dataSrc = await ctx.openFile(h.dataFile, src.name, 'data file');
        opened.push(dataSrc);
      }
      const dev = new Qcow2Device(src, h, l1, dataSrc, ctx.writable);
      const t = await readSnapshotTable(src, src.name, h.snapshotsOffset, h.nbSnapshots, h.clusterSize);
      dev.snapshotEntries = t.entries;
      dev.snapshotTableBytes = t.bytes;
      if (h.backingFile !== undefined && ctx.openBacking) {
        dev.backing = await ctx.openReference(h.backingFile, src.name, h.backingFormat, 'backing file');
      }
      if (ctx.writable) {
        if (h.incompatible & INCOMPAT_CORRUPT) throw new UnsupportedFeature('image is marked corrupt; it can only be opened read-only (or repaired with check)', { file: src.name });
        if (dataSrc !== src) throw new UnsupportedFeature('writing to images with an external data file is not supported', { file: src.name });
      }
      const { attachSnapshotOps } = await import('./snapshot.js');
      attachSnapshotOps(dev);
      return dev;
    } catch (err) {
      for (const o of opened) await o.close().catch(() => {});
      throw err;
    }
  }

  /** A read-only view sharing this image's file, with another L1 table (a snapshot). */
  view(l1: Uint8Array, virtualSize: number): Qcow2Device {
    const d = new Qcow2Device(this.src, this.h, l1, this.dataSrc, false);
    d.ownsSource = false;
    d.virtualSize = virtualSize;
    d.backing = this.backing;
    return d;
  }

  private checkRange(offset: number, length: number): void {
    if (!(offset >= 0 && length >= 0 && offset + length <= this.virtualSize)) {
      throw new InvalidArgument(`range ${offset}+${length} is outside the virtual disk (${this.virtualSize} bytes)`, { file: this.name });
    }
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.checkRange(offset, buf.length);
    const hostRuns: HostRun[] = [];
    const cRuns: CRun[] = [];
    const fill: Array<{ pos: number; len: number; kind: SegKind }> = [];
    let last: HostRun | null = null;
    let lastFill: { pos: number; len: number; kind: SegKind } | null = null;
    await this.map.walk(offset, buf.length, (kind, pos, len, host, csize, inCluster) => {
      if (kind === SEG_DATA) {
        if (last && last.pos + last.len === pos && last.host + last.len === host) last.len += len;
        else hostRuns.push(last = { pos, len, host });
      } else if (kind === SEG_COMPRESSED) {
        cRuns.push({ pos, len, coff: host, csize, inCluster });
      } else if (lastFill && lastFill.kind === kind && lastFill.pos + lastFill.len === pos) {
        lastFill.len += len;
      } else {
        fill.push(lastFill = { pos, len, kind });
      }
    });
    const work: Promise<void>[] = [];
    for (const r of hostRuns) {
      // Large runs go out as a few parallel preads: one copy thread cannot saturate memory bandwidth.
      const pieces = Math.min(4, Math.floor(r.len / SPLIT_MIN)) || 1;
      const step = Math.ceil(r.len / pieces / 4096) * 4096;
      for (let o = 0; o < r.len; o += step) {
        const n = Math.min(step, r.len - o);
        work.push(this.readHost(buf.subarray(r.pos - offset + o, r.pos - offset + o + n), r.host + o));
      }
    }
    for (const f of fill) {
      const part = buf.subarray(f.pos - offset, f.pos - offset + f.len);
      if (f.kind === SEG_UNALLOC && this.backing) work.push(readBacking(this.backing, part, f.pos));
      else part.fill(0);
    }
    if (cRuns.length) work.push(this.readCompressed(buf, offset, cRuns));
    await Promise.all(work);
  }

  private async readHost(part: Uint8Array, host: number): Promise<void> {
    const n = await this.dataSrc.read(part, host);
    // A data cluster may end past a file that was cut short; qemu reads zeros there.
    if (n < part.length) part.fill(0, n);
  }

  private async readCompressed(buf: Uint8Array, offset: number, runs: CRun[]): Promise<void> {
    const cs = this.clusterSize;
    // Payloads of neighbouring compressed clusters sit next to each other: one pread each group.
    const payloads: Uint8Array[] = new Array(runs.length);
    let i = 0;
    const reads: Promise<void>[] = [];
    while (i < runs.length) {
      let j = i + 1, start = runs[i]!.coff, end = start + runs[i]!.csize;
      while (j < runs.length && runs[j]!.coff >= start && runs[j]!.coff <= end + 4096 && runs[j]!.coff + runs[j]!.csize - start <= 64 * cs) {
        end = Math.max(end, runs[j]!.coff + runs[j]!.csize);
        j++;
      }
      const from = i, to = j, s = start;
      const group = new Uint8Array(Math.min(end, this.src.size) - start);
      reads.push(this.src.read(group, s).then(() => {
        for (let k = from; k < to; k++) {
          const r = runs[k]!;
          payloads[k] = group.slice(r.coff - s, Math.min(group.length, r.coff - s + r.csize));
        }
      }));
      i = j;
    }
    await Promise.all(reads);
    const ct = this.h.compressionType;
    let clusters: Uint8Array[];
    if (runs.length <= INLINE_DECOMPRESS) clusters = payloads.map((p, k) => decompressCluster(p, ct, cs, this.name, runs[k]!.coff));
    else clusters = await decompressMany(payloads, runs.map((r) => r.coff), ct, cs, this.name);
    runs.forEach((r, k) => buf.set(clusters[k]!.subarray(r.inCluster, r.inCluster + r.len), r.pos - offset));
  }

  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    this.checkRange(offset, length);
    let cur: Extent | null = null;
    const out: Extent[] = [];
    const visit = (kind: SegKind, pos: number, len: number, host: number): void => {
      const k = kind === SEG_DATA || kind === SEG_COMPRESSED ? 'data' : kind === SEG_ZERO ? 'zero' : 'unallocated';
      const compressed = kind === SEG_COMPRESSED;
      if (cur && cur.kind === k && cur.offset + cur.length === pos && !!cur.compressed === compressed
        && (k !== 'data' || compressed || cur.hostOffset! + cur.length === host)) {
        cur.length += len;
        return;
      }
      if (cur) out.push(cur);
      cur = { offset: pos, length: len, kind: k };
      if (compressed) cur.compressed = true;
      else if (k === 'data') cur.hostOffset = host;
    };
    // Walk one L2 table's span at a time so memory stays bounded on huge images.
    const step = this.map.l1Span * 16;
    for (let pos = offset; pos < offset + length;) {
      const n = Math.min(step - (pos % step), offset + length - pos);
      await this.map.walk(pos, n, visit);
      pos += n;
      yield* out.splice(0);
    }
    if (cur) yield cur;
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    this.checkRange(offset, buf.length);
    await (await this.updater()).write(buf, offset);
  }

  private writerReady?: Promise<Writer>;

  /** The one updater of this device; concurrent first callers share its creation. */
  updater(): Promise<Writer> {
    if (!this.writable) return Promise.reject(new UnsupportedFeature('image is opened read-only', { file: this.name }));
    this.writerReady ??= (async () => {
      const { Writer } = await import('./write.js');
      this.writer = await Writer.create(this);
      // A dirty image (lazy refcounts) may have stale refcounts: rebuild them before changing anything.
      if (this.h.incompatible & INCOMPAT_DIRTY) {
        const { checkImage } = await import('./check.js');
        await checkImage(this, 'all', this.writer);
        await this.writer.clearDirty();
      }
      return this.writer;
    })();
    return this.writerReady;
  }

  describe(): DeviceInfo {
    const h = this.h;
    const data: Record<string, unknown> = { compat: h.version === 3 ? '1.1' : '0.10', 'compression-type': compressionName(h.compressionType) };
    if (h.version === 3) {
      data['lazy-refcounts'] = (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0;
    }
    data['refcount-bits'] = 1 << h.refcountOrder;
    if (h.dataFile !== undefined) {
      data['data-file'] = h.dataFile;
      data['data-file-raw'] = (h.autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0;
    }
    if (h.version === 3) {
      data.corrupt = (h.incompatible & INCOMPAT_CORRUPT) !== 0;
      data['extended-l2'] = (h.incompatible & INCOMPAT_EXTL2) !== 0;
    }
    const info: DeviceInfo = {
      clusterSize: h.clusterSize,
      dirty: (h.incompatible & INCOMPAT_DIRTY) !== 0,
      formatSpecific: { type: 'qcow2', data },
      snapshots: this.snapshotEntries.map(snapshotInfo),
    };
    if (h.backingFile !== undefined) info.backingFilename = h.backingFile;
    if (h.backingFormat !== undefined) info.backingFormat = h.backingFormat;
    if (h.dataFile !== undefined) info.dataFile = h.dataFile;
    return info;
  }

  async check(opts: { repair?: 'leaks' | 'all' }): Promise<CheckReport> {
    const { checkImage } = await import('./check.js');
    return checkImage(this, opts.repair);
  }

  async resize(newSize: number, opts: { shrink: boolean; preallocation?: string }): Promise<void> {
    if (opts.preallocation && opts.preallocation !== 'off') throw new UnsupportedFeature(`resize with preallocation=${opts.preallocation} is not supported for qcow2`, { file: this.name });
    await (await this.updater()).resize(newSize, opts.shrink);
  }

  async flush(): Promise<void> {
    if (this.writer) await this.writer.flush();
  }

  async close(): Promise<void> {
    if (!this.ownsSource) return;
    if (this.writer) await this.writer.flush();
    await this.backing?.close();
    if (this.dataSrc !== this.src) await this.dataSrc.close();
    await this.src.close();
  }
}

/** Reads from the backing device; zeros past its end. */
async function readBacking(backing: BlockDevice, part: Uint8Array, pos: number): Promise<void> {
  const avail = Math.max(0, Math.min(part.length, backing.virtualSize - pos));
  if (avail > 0) await backing.read(avail === part.length ? part : part.subarray(0, avail), pos);
  if (avail < part.length) part.fill(0, avail);
}

