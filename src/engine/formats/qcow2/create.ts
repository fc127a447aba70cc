// Writing a new qcow2 image. Data clusters go right after the header in guest order
// (so later reads coalesce); L2 tables, the L1 table and the refcount structures are
// computed at finish() and written after the data, the header last — so an aborted
// image never carries a valid header.

import type { CreateRequest, ImageWriter } from '../../block/device.js';
import type { ByteSink } from '../../io/source.js';
import { InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { compressPool } from '../../compress/pool.js';
import { serializeHeader } from './header.js';
import { HI_COPIED, HI_COMPRESSED, TWO32 } from './constants.js';
import { parseCreateOptions, maxVirtualSize, refcountMetadataClusters, type Qcow2CreateOptions } from './options.js';
import { putRefcount, refcountMax } from './refcount.js';
import { codecOf } from './compressed.js';

/** Clusters per compression job: up to 32, and at most 4 MiB of input so memory stays bounded with 2 MiB clusters. */
const BATCH_CLUSTERS = 32;
const BATCH_BYTES = 4 * 1024 * 1024;
const STAGE_BYTES = 4 * 1024 * 1024;

export async function createQcow2(req: CreateRequest): Promise<ImageWriter> {
  const o = parseCreateOptions(req.options, { backingFile: req.backingFile, backingFormat: req.backingFormat });
  if (!req.sink.seekable) throw new UnsupportedFeature('qcow2 output must be seekable (a file)', { file: req.sink.name });
  if (!Number.isSafeInteger(req.virtualSize) || req.virtualSize < 0) throw new InvalidArgument(`invalid virtual size ${req.virtualSize}`);
  if (req.virtualSize > maxVirtualSize(o.clusterBits, o.extendedL2)) {
    throw new InvalidArgument(`virtual size ${req.virtualSize} is too large for cluster_size ${2 ** o.clusterBits}`, { file: req.sink.name });
  }
  // qemu counts sizes in 512-byte sectors (a smaller tail would be cut off), so round up like qemu-img does.
  return new Qcow2Creator(req.sink, Math.ceil(req.virtualSize / 512) * 512, o, req.compress === true);
}

function isZero(b: Uint8Array): boolean {
  if (b[0] !== 0 || b[b.length - 1] !== 0 || b[b.length >> 1] !== 0) return false;
  const zero = zeroBuf(b.length);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).equals(zero);
}
let zeros = Buffer.alloc(0);
function zeroBuf(n: number): Buffer {
  if (zeros.length < n) zeros = Buffer.alloc(n);
  return zeros.subarray(0, n);
}

interface Batch { clusters: number[]; chunks: Uint8Array[]; result?: Promise<Uint8Array[]> }

class Qcow2Creator implements ImageWriter {
  private readonly cs: number;
  private readonly entryBytes: number;
  private readonly l2Entries: number;
  private readonly l1Size: number;
  /** L2 tables by L1 index, built in memory (metadata is ~1/8192 of the data at 64 KiB clusters). */
  private l2 = new Map<number, Uint8Array>();
  /** Next free byte for data; starts after the header cluster. */
  private dataEnd: number;
  /** Refcounts of data clusters when compressed payloads share clusters (index = cluster - 1). */
  private counts: Uint32Array | null = null;
  private readonly maxRef: number;
  private pos = 0;
  /** The partly written cluster; `covered` counts its bytes written so far. */
  private cur: { idx: number; buf: Uint8Array; covered: number } | null = null;
  private curBuf: Uint8Array;
  private batch: Batch = { clusters: [], chunks: [] };
  private inflight: Batch[] = [];
  private stage: Uint8Array | null = null;
  private stageStart = 0;
  private stageLen = 0;
  private failed = false;

  constructor(private sink: ByteSink, private size: number, private o: Qcow2CreateOptions, private compress: boolean) {
    this.cs = 2 ** o.clusterBits;
    this.entryBytes = o.extendedL2 ? 16 : 8;
    this.l2Entries = this.cs / this.entryBytes;
    this.l1Size = Math.ceil(size / (this.l2Entries * this.cs));
    this.dataEnd = this.cs;
    this.maxRef = refcountMax(o.refcountOrder);
    this.curBuf = new Uint8Array(this.cs);
    if (compress) {
      this.counts = new Uint32Array(1024);
      this.stage = new Uint8Array(STAGE_BYTES);
    }
    if (o.preallocMetadata) {
      // Every guest cluster maps to host = header + guest offset.
      const n = Math.ceil(size / this.cs);
      for (let ci = 0; ci < n; ci++) this.setEntry(ci, this.cs * (1 + ci), false);
      this.dataEnd = this.cs * (1 + n);
    }
  }

  private setEntry(ci: number, host: number, zeroFlag: boolean): void {
    const t = this.table(ci);
    const dv = new DataView(t.buffer);
    const i = (ci % this.l2Entries) * this.entryBytes;
    if (host) {
      dv.setUint32(i, HI_COPIED | Math.floor(host / TWO32));
      dv.setUint32(i + 4, host >>> 0);
      if (this.o.extendedL2) dv.setUint32(i + 12, 0xffffffff);
    } else if (zeroFlag) {
      if (this.o.extendedL2) dv.setUint32(i + 8, 0xffffffff);
      else dv.setUint32(i + 4, 1);
    }
  }

  private table(ci: number): Uint8Array {
    const li = Math.floor(ci / this.l2Entries);
    let t = this.l2.get(li);
    if (!t) { t = new Uint8Array(this.cs); this.l2.set(li, t); }
    return t;
  }

  async writeData(offset: number, data: Uint8Array): Promise<void> {
    if (this.failed) throw new InvalidArgument('writer already failed or aborted', { file: this.sink.name });
    if (offset < this.pos) throw new InvalidArgument(`qcow2 writer needs data in increasing offset order (${offset} after ${this.pos})`, { file: this.sink.name });
    if (offset + data.length > this.size) throw new InvalidArgument(`write at ${offset}+${data.length} is past the virtual size ${this.size}`, { file: this.sink.name });
    this.pos = offset + data.length;
    if (this.o.preallocMetadata && !this.compress) {
      await this.sink.write(data, this.cs + offset);
      return;
    }
    const cs = this.cs;
    let p = 0;
    while (p < data.length) {
      const g = offset + p, ci = Math.floor(g / cs), inOff = g - ci * cs;
      if (this.cur && this.cur.idx !== ci) await this.flushCur();
      if (inOff === 0 && !this.cur && data.length - p >= cs) {
        const n = Math.floor((data.length - p) / cs);
        await this.fullClusters(ci, data.subarray(p, p + n * cs));
        p += n * cs;
        continue;
      }
      if (!this.cur) { this.curBuf.fill(0); this.cur = { idx: ci, buf: this.curBuf, covered: 0 }; }
      const take = Math.min(cs - inOff, data.length - p);
      this.cur.buf.set(data.subarray(p, p + take), inOff);
      this.cur.covered += take;
      p += take;
      if (inOff + take === cs || g + take === this.size) await this.flushCur();
    }
  }

  async writeZero(offset: number, length: number): Promise<void> {
    if (offset < this.pos) throw new InvalidArgument(`qcow2 writer needs data in increasing offset order (${offset} after ${this.pos})`, { file: this.sink.name });
    // Without a backing file unwritten clusters already read as zeros.
    if (!this.o.backingFile) { this.pos = offset + length; return; }
    const cs = this.cs;
    let g = offset;
    const end = offset + length;
    while (g < end) {
      const ci = Math.floor(g / cs), inOff = g - ci * cs, take = Math.min(cs - inOff, end - g);
      const clusterEnd = Math.min(this.size, (ci + 1) * cs);
      if (inOff === 0 && g + take >= clusterEnd && !(this.cur && this.cur.idx === ci)) {
        if (this.o.version === 3) this.setEntry(ci, 0, true);
        else await this.fullClusters(ci, zeroBuf(cs), true);
        g += take;
        this.pos = g;
      } else {
        await this.writeData(g, zeroBuf(take));
        g += take;
      }
    }
  }

  private async flushCur(): Promise<void> {
    const c = this.cur!;
    this.cur = null;
    // The rest of the cluster would have to come from the backing file, which a writer
    // never opens; zero-filling it would silently change the guest's data.
    if (this.o.backingFile !== undefined && c.covered < Math.min(this.cs, this.size - c.idx * this.cs)) {
      throw new InvalidArgument(`qcow2 writer with a backing file needs whole clusters: cluster at ${c.idx * this.cs} was only partly written (${c.covered} of ${this.cs} bytes)`, { file: this.sink.name });
    }
    await this.fullClusters(c.idx, c.buf);
  }

  /** Full clusters starting at guest cluster `ci` (the last may be the image's partial tail, zero padded). */
  private async fullClusters(ci: number, buf: Uint8Array, forceData = false): Promise<void> {
    const cs = this.cs;
    const n = buf.length / cs;
    // With a backing file, zeros must hide what is below; v3 says so with a zero flag.
    const keepZero = forceData || (this.o.backingFile !== undefined && this.o.version === 2);
    let runStart = -1;
    for (let k = 0; k <= n; k++) {
      const zero = k < n && !keepZero && isZero(buf.subarray(k * cs, (k + 1) * cs));
      const dataCluster = k < n && !zero;
      if (zero && this.o.backingFile !== undefined) this.setEntry(ci + k, 0, true);
      if (dataCluster && runStart < 0) runStart = k;
      if (!dataCluster && runStart >= 0) {
        await this.dataRun(ci + runStart, buf.subarray(runStart * cs, k * cs));
        runStart = -1;
      }
    }
  }

  private async dataRun(ci: number, buf: Uint8Array): Promise<void> {
    const cs = this.cs;
    if (this.compress) {
      for (let k = 0; k < buf.length / cs; k++) {
        this.batch.clusters.push(ci + k);
        // An explicit copy: the caller reuses `buf`, and a view (Buffer#slice) would make
        // postMessage clone the caller's whole ArrayBuffer.
        const chunk = new Uint8Array(cs);
        chunk.set(buf.subarray(k * cs, (k + 1) * cs));
        this.batch.chunks.push(chunk);
        if (this.batch.clusters.length >= Math.max(1, Math.min(BATCH_CLUSTERS, BATCH_BYTES / cs))) await this.dispatch();
      }
      return;
    }
    if (this.o.preallocMetadata) { await this.sink.write(buf, cs * (1 + ci)); return; }
    const host = this.dataEnd;
    await this.sink.write(buf, host);
    for (let k = 0; k < buf.length / cs; k++) this.setEntry(ci + k, host + k * cs, false);
    this.dataEnd = host + buf.length;
  }

  private async dispatch(): Promise<void> {
    const b = this.batch;
    if (b.clusters.length === 0) return;
    this.batch = { clusters: [], chunks: [] };
    b.result = compressPool().run({ op: 'compress', codec: codecOf(this.o.compressionType), chunks: b.chunks });
    b.result.catch(() => {}); // handled when drained
    this.inflight.push(b);
    // Bounded: a few batches per core in flight, then wait for the oldest.
    while (this.inflight.length > compressPool().size * 2) await this.drainOne();
  }

  private async drainOne(): Promise<void> {
    const b = this.inflight.shift()!;
    const outs = await b.result!;
    for (let k = 0; k < b.clusters.length; k++) await this.place(b.clusters[k]!, outs[k]!, b.chunks[k]!);
  }

  private count(cluster: number, add: number): number {
    let c = this.counts!;
    if (cluster - 1 >= c.length) {
      const bigger = new Uint32Array(Math.max(c.length * 2, cluster + 1024));
      bigger.set(c);
      this.counts = c = bigger;
    }
    c[cluster - 1]! += add;
    return c[cluster - 1]!;
  }

  /** Stores one cluster's compressed payload (or the plain cluster when it did not shrink). */
  private async place(ci: number, out: Uint8Array, plain: Uint8Array): Promise<void> {
    const cs = this.cs;
    if (this.o.preallocMetadata) {
      // Preallocated clusters stay plain: the mapping is fixed up front.
      await this.append(plain, cs * (1 + ci));
      return;
    }
    if (out.length >= cs) {
      const host = Math.ceil(this.dataEnd / cs) * cs;
      await this.append(plain, host);
      this.setEntry(ci, host, false);
      this.count(host / cs, 1);
      this.dataEnd = host + cs;
      return;
    }
    let coff = this.dataEnd;
    if (coff % cs !== 0 && (this.counts![Math.floor(coff / cs) - 1] ?? 0) >= this.maxRef) coff = Math.ceil(coff / cs) * cs;
    const first = Math.floor(coff / 512), sectors = Math.ceil((coff + out.length) / 512) - first;
    await this.append(out, coff);
    const hiBits = 70 - this.o.clusterBits - 32;
    const t = this.table(ci);
    const dv = new DataView(t.buffer);
    const i = (ci % this.l2Entries) * this.entryBytes;
    dv.setUint32(i, HI_COMPRESSED | ((sectors - 1) << hiBits) | Math.floor(coff / TWO32));
    dv.setUint32(i + 4, coff >>> 0);
    const c0 = Math.floor(first * 512 / cs), c1 = Math.floor(((first + sectors) * 512 - 1) / cs);
    for (let c = c0; c <= c1; c++) this.count(c, 1);
    this.dataEnd = coff + out.length;
  }

  /** Appends through a staging buffer so small compressed payloads become large writes. */
  private async append(bytes: Uint8Array, at: number): Promise<void> {
    const st = this.stage!;
    const stageEnd = this.stageStart + this.stageLen;
    if (this.stageLen > 0 && (at < stageEnd || at - stageEnd >= this.cs)) await this.flushStage();
    if (this.stageLen === 0) this.stageStart = at;
    const gap = at - (this.stageStart + this.stageLen);
    if (gap > 0) { st.fill(0, this.stageLen, this.stageLen + gap); this.stageLen += gap; }
    if (this.stageLen + bytes.length > st.length) {
      await this.flushStage();
      if (bytes.length >= st.length) { await this.sink.write(bytes, at); return; }
      this.stageStart = at;
    }
    st.set(bytes, this.stageLen);
    this.stageLen += bytes.length;
  }

  private async flushStage(): Promise<void> {
    if (this.stageLen > 0) await this.sink.write(this.stage!.subarray(0, this.stageLen), this.stageStart);
    this.stageLen = 0;
  }

  async finish(): Promise<void> {
    if (this.failed) throw new InvalidArgument('writer already failed or aborted', { file: this.sink.name });
    try {
      if (this.cur) await this.flushCur();
      await this.dispatch();
      while (this.inflight.length) await this.drainOne();
      if (this.stage) await this.flushStage();
      await this.writeMetadata();
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  private async writeMetadata(): Promise<void> {
    const cs = this.cs;
    const dataClustersEnd = Math.ceil(this.dataEnd / cs); // first cluster after the data
    let next = dataClustersEnd * cs;
    // L2 tables in L1 order.
    const l1 = new Uint8Array(Math.max(1, Math.ceil(this.l1Size * 8 / cs)) * cs);
    const l1dv = new DataView(l1.buffer);
    for (const li of [...this.l2.keys()].sort((a, b) => a - b)) {
      await this.sink.write(this.l2.get(li)!, next);
      l1dv.setUint32(li * 8, HI_COPIED | Math.floor(next / TWO32));
      l1dv.setUint32(li * 8 + 4, next >>> 0);
      next += cs;
    }
    const l1Clusters = this.l1Size > 0 ? Math.ceil(this.l1Size * 8 / cs) : 0;
    const l1Offset = l1Clusters ? next : 0;
    if (l1Clusters) { await this.sink.write(l1.subarray(0, l1Clusters * cs), l1Offset); next += l1Clusters * cs; }
    // Refcounts cover everything up to here plus the refcount structures themselves.
    const used = next / cs;
    const { blocks, table } = refcountMetadataClusters(used, cs, this.o.refcountOrder);
    const blocksOffset = next, tableOffset = next + blocks * cs, end = tableOffset + table * cs;
    const endCluster = end / cs;
    const perBlock = cs * 8 / (1 << this.o.refcountOrder);
    const refAt = (c: number): number => {
      if (c === 0) return 1;
      if (c < dataClustersEnd) return this.counts && !this.o.preallocMetadata ? (this.counts[c - 1] ?? 0) : 1;
      return c < endCluster ? 1 : 0;
    };
    const tbl = new Uint8Array(table * cs);
    const tdv = new DataView(tbl.buffer);
    const blk = new Uint8Array(cs);
    const bdv = new DataView(blk.buffer);
    for (let b = 0; b < blocks; b++) {
      blk.fill(0);
      const first = b * perBlock, last = Math.min(endCluster, first + perBlock);
      for (let c = first; c < last; c++) {
        const v = refAt(c);
        if (v) putRefcount(blk, bdv, c - first, this.o.refcountOrder, v);
      }
      await this.sink.write(blk, blocksOffset + b * cs);
      const off = blocksOffset + b * cs;
      tdv.setUint32(b * 8, Math.floor(off / TWO32));
      tdv.setUint32(b * 8 + 4, off >>> 0);
    }
    await this.sink.write(tbl, tableOffset);
    const header = serializeHeader({
      version: this.o.version, clusterBits: this.o.clusterBits, size: this.size,
      l1Size: this.l1Size, l1TableOffset: l1Offset,
      refcountTableOffset: tableOffset, refcountTableClusters: table,
      refcountOrder: this.o.refcountOrder, compressionType: this.o.compressionType,
      extendedL2: this.o.extendedL2, lazyRefcounts: this.o.lazyRefcounts,
      backingFile: this.o.backingFile, backingFormat: this.o.backingFormat,
    }, this.sink.name);
    await this.sink.write(header, 0);
    await this.sink.sync();
  }

  async abort(): Promise<void> {
    // The header is written last, so what is on disk is not a qcow2 image; just stop.
    this.failed = true;
    this.inflight = [];
    this.batch = { clusters: [], chunks: [] };
  }
}
