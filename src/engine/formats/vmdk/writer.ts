// Writing VMDK: monolithicSparse (hosted sparse extent with tables laid out up front,
// grains appended), streamOptimized (deflated grains with markers, front to back, so it
// can go to a pipe; grain tables follow their grains, the directory and a footer come
// last), and monolithicFlat / twoGbMaxExtent* (a descriptor plus extent files created
// next to the target through req.createSibling).

import { randomInt } from 'node:crypto';
import path from 'node:path';
import type { CreateRequest, ImageWriter } from '../../block/device.js';
import type { ByteSink } from '../../io/source.js';
import { InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { compressPool } from '../../compress/pool.js';
import {
  COMPRESSION_DEFLATE, COMPRESSION_NONE, FLAG_COMPRESSED, FLAG_MARKERS, FLAG_NL_DETECT, FLAG_RGD, FLAG_ZERO_GRAIN,
  MARKER_EOS, MARKER_FOOTER, MARKER_GD, MARKER_GT, SECTOR, type SparseHeader, metadataMarker, serializeSparseHeader,
} from './header.js';
import { type DescriptorSpec, type ExtentType, serializeDescriptor } from './descriptor.js';

export const SUBFORMATS = ['monolithicSparse', 'monolithicFlat', 'twoGbMaxExtentSparse', 'twoGbMaxExtentFlat', 'streamOptimized'] as const;
export const ADAPTERS = ['ide', 'lsilogic', 'buslogic', 'legacyESX'] as const;

const GRAIN_SECTORS = 128; // 64 KiB, what qemu and VMware write
const GTES_PER_GT = 512;
const DESC_SECTORS = 20;
const TWO_GB = 2 * 1024 * 1024 * 1024;
/** 2 TiB minus a sector: the largest disk a 32-bit grain table entry can address in one sparse extent. */
const MAX_SPARSE_BYTES = (2 ** 32 - 1) * SECTOR;

export interface VmdkOptions {
  subformat: (typeof SUBFORMATS)[number];
  adapterType: (typeof ADAPTERS)[number];
  hwVersion: string;
  toolsVersion: string;
  zeroedGrain: boolean;
  level?: number;
}

export function parseOptions(o: Record<string, string>): VmdkOptions {
  const subformat = (o.subformat ?? 'monolithicSparse') as VmdkOptions['subformat'];
  if (!SUBFORMATS.includes(subformat)) throw new InvalidArgument(`vmdk: unknown subformat '${o.subformat}' (one of ${SUBFORMATS.join(', ')})`);
  const adapterType = (o.adapter_type ?? 'ide') as VmdkOptions['adapterType'];
  if (!ADAPTERS.includes(adapterType)) throw new InvalidArgument(`vmdk: unknown adapter_type '${o.adapter_type}' (one of ${ADAPTERS.join(', ')})`);
  const bool = (k: string) => {
    const v = o[k];
    if (v === undefined) return false;
    if (['on', 'true', 'yes', '1'].includes(v)) return true;
    if (['off', 'false', 'no', '0'].includes(v)) return false;
    throw new InvalidArgument(`vmdk: option ${k} expects on/off, got '${v}'`);
  };
  let hwVersion = o.hwversion ?? 'undefined';
  if (bool('compat6')) {
    if (o.hwversion !== undefined && o.hwversion !== '6') throw new InvalidArgument('vmdk: compat6 conflicts with hwversion');
    hwVersion = '6';
  }
  if (hwVersion === 'undefined') hwVersion = '4';
  if (!/^\d{1,3}$/.test(hwVersion)) throw new InvalidArgument(`vmdk: hwversion '${hwVersion}' is not a number`);
  const toolsVersion = o.toolsversion ?? '2147483647';
  if (!/^\d{1,10}$/.test(toolsVersion)) throw new InvalidArgument(`vmdk: toolsversion '${toolsVersion}' is not a number`);
  let level: number | undefined;
  if (o.compression_level !== undefined) {
    level = Number(o.compression_level);
    if (!Number.isInteger(level) || level < 1 || level > 9) throw new InvalidArgument('vmdk: compression_level must be 1..9');
  }
  return { subformat, adapterType, hwVersion, toolsVersion, zeroedGrain: bool('zeroed_grain'), level };
}

function ddb(virtualSize: number, o: VmdkOptions): Array<[string, string]> {
  const heads = o.adapterType === 'ide' ? 16 : 255;
  const cylinders = Math.min(16383, Math.floor(virtualSize / (63 * heads * SECTOR)));
  return [
    ['virtualHWVersion', o.hwVersion],
    ['geometry.cylinders', String(cylinders)],
    ['geometry.heads', String(heads)],
    ['geometry.sectors', '63'],
    ['adapterType', o.adapterType],
    ['toolsVersion', o.toolsVersion],
  ];
}

function isZero(b: Uint8Array): boolean {
  // Native compares: first word, then the buffer against itself shifted by 16 bytes... done
  // simply with Buffer.compare on a shared zero block.
  for (let off = 0; off < b.length; off += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - off);
    if (Buffer.compare(Buffer.from(b.buffer, b.byteOffset + off, n), n === ZERO.length ? ZERO : ZERO.subarray(0, n)) !== 0) return false;
  }
  return true;
}
const ZERO = Buffer.alloc(64 * 1024);

function newCid(): number { return randomInt(1, 0xfffffffe); }

export async function createVmdk(req: CreateRequest): Promise<ImageWriter> {
  const o = parseOptions(req.options);
  if (req.virtualSize < 0 || req.virtualSize % SECTOR !== 0) {
    throw new InvalidArgument(`vmdk: virtual size ${req.virtualSize} is not a multiple of ${SECTOR} bytes`);
  }
  if (req.compress && o.subformat !== 'streamOptimized') {
    throw new InvalidArgument(`vmdk: compression (-c) needs subformat=streamOptimized`);
  }
  const cid = newCid();
  let parent: { parentCid?: number; parentFileNameHint?: string } = {};
  if (req.backingFile !== undefined) {
    // qemu reads a child only when its parentCID equals the parent's CID.
    const b = req.backingDevice;
    if (!b) throw new UnsupportedFeature('vmdk: a child image needs its parent opened to record the parent CID (pass backingDevice)');
    const fs = b.describe().formatSpecific;
    const cid = fs?.type === 'vmdk' && typeof fs.data.cid === 'number' ? fs.data.cid : 0xffffffff;
    parent = { parentCid: cid, parentFileNameHint: req.backingFile };
  }
  const descBase = { cid, ...parent, createType: o.subformat, ddb: ddb(req.virtualSize, o) };
  const keepZeros = req.backingFile !== undefined;
  switch (o.subformat) {
    case 'streamOptimized': {
      if (req.virtualSize > MAX_SPARSE_BYTES) throw new InvalidArgument('vmdk: streamOptimized disks are limited to 2 TiB');
      const desc = serializeDescriptor({ ...descBase, extents: [{ sectors: req.virtualSize / SECTOR, type: 'SPARSE', file: path.basename(req.sink.name) }] });
      return Promise.resolve(new StreamWriter(req.sink, req.virtualSize, desc, keepZeros, o.level));
    }
    case 'monolithicSparse': {
      if (!req.sink.seekable) throw new UnsupportedFeature('vmdk: monolithicSparse needs a seekable target; use subformat=streamOptimized for pipes');
      if (req.virtualSize > MAX_SPARSE_BYTES) throw new InvalidArgument('vmdk: monolithicSparse disks are limited to 2 TiB');
      const desc = serializeDescriptor({ ...descBase, extents: [{ sectors: req.virtualSize / SECTOR, type: 'SPARSE', file: path.basename(req.sink.name) }] });
      return Promise.resolve(new SparseWriter(req.sink, req.virtualSize, desc, keepZeros, o.zeroedGrain, true));
    }
    default:
      return createSplit(req, o, descBase, keepZeros);
  }
}

// ---------------------------------------------------------------------------
// Grain-sized chunking shared by the sparse writers: full grains are handed over in
// runs straight from the caller's buffer; partial grains are gathered in one buffer.

abstract class GrainChunker implements ImageWriter {
  protected readonly G = GRAIN_SECTORS * SECTOR;
  private partial: Uint8Array | null = null;
  private partialGrain = -1;

  constructor(protected readonly virtualSize: number, protected readonly keepZeros: boolean) {}

  /** Full grains [first, first+count) with their bytes (count*G, or less for the disk's last grain). */
  protected abstract grains(first: number, data: Uint8Array): Promise<void>;
  protected abstract zeroGrains(first: number, count: number): Promise<void>;
  protected abstract finishTables(): Promise<void>;
  abstract abort(): Promise<void>;

  private lastEnd = 0;

  async writeData(offset: number, data: Uint8Array): Promise<void> {
    if (offset < this.lastEnd) throw new InvalidArgument(`vmdk writer: data must come in increasing offset order (${offset} < ${this.lastEnd})`);
    if (offset + data.length > this.virtualSize) throw new InvalidArgument('vmdk writer: write past the end of the disk');
    this.lastEnd = offset + data.length;
    const G = this.G;
    let pos = offset;
    const end = offset + data.length;
    while (pos < end) {
      const g = Math.floor(pos / G);
      const gStart = g * G;
      const gEnd = Math.min(gStart + G, this.virtualSize);
      if (pos === gStart && end >= gEnd) {
        // A run of whole grains straight from the caller's buffer.
        if (this.partialGrain >= 0 && this.partialGrain < g) await this.flushPartial();
        const runEnd = end === this.virtualSize ? end : Math.floor(end / G) * G;
        await this.dataRun(g, data.subarray(pos - offset, runEnd - offset));
        pos = runEnd;
        continue;
      }
      if (this.partialGrain !== g) {
        await this.flushPartial();
        this.partial ??= new Uint8Array(G);
        this.partial.fill(0);
        this.partialGrain = g;
      }
      const n = Math.min(end, gEnd) - pos;
      this.partial!.set(data.subarray(pos - offset, pos - offset + n), pos - gStart);
      pos += n;
    }
  }

  /** Splits a run of whole grains into non-zero runs (zeros are left unallocated unless a backing file shows through). */
  private async dataRun(first: number, bytes: Uint8Array): Promise<void> {
    const G = this.G;
    if (this.keepZeros) return this.grains(first, bytes);
    const count = Math.ceil(bytes.length / G);
    let runStart = -1;
    for (let i = 0; i <= count; i++) {
      const zero = i === count || isZero(bytes.subarray(i * G, Math.min(bytes.length, (i + 1) * G)));
      if (!zero && runStart < 0) runStart = i;
      if (zero && runStart >= 0) {
        await this.grains(first + runStart, bytes.subarray(runStart * G, Math.min(bytes.length, i * G)));
        runStart = -1;
      }
    }
  }

  private async flushPartial(): Promise<void> {
    if (this.partialGrain < 0) return;
    const g = this.partialGrain;
    this.partialGrain = -1;
    const len = Math.min(this.G, this.virtualSize - g * this.G);
    const bytes = this.partial!.subarray(0, len);
    if (this.keepZeros || !isZero(bytes)) await this.grains(g, bytes);
  }

  async writeZero(offset: number, length: number): Promise<void> {
    // Only whole grains can be marked; the rest is written as zero data.
    const G = this.G;
    const end = Math.min(this.virtualSize, offset + length);
    const first = Math.ceil(offset / G);
    const last = end === this.virtualSize ? Math.ceil(end / G) : Math.floor(end / G);
    if (last <= first) { if (this.keepZeros) await this.writeData(offset, new Uint8Array(end - offset)); return; }
    if (offset < first * G) await this.writeData(offset, new Uint8Array(first * G - offset));
    await this.flushPartial();
    this.lastEnd = Math.max(this.lastEnd, Math.min(end, last * G));
    await this.zeroGrains(first, last - first);
    if (last * G < end) await this.writeData(last * G, new Uint8Array(end - last * G));
  }

  async finish(): Promise<void> {
    await this.flushPartial();
    await this.finishTables();
  }
}

// ---------------------------------------------------------------------------

/** Hosted sparse extent with tables preallocated after the header, like qemu lays it out. */
export class SparseWriter extends GrainChunker {
  private gdEntries: number;
  private gtSectors = Math.ceil(GTES_PER_GT * 4 / SECTOR);
  private gdSectors: number;
  private rgdOffset: number;
  private gdOffset: number;
  private overHead: number;
  private next: number;
  private tables = new Map<number, Uint32Array>();

  constructor(private sink: ByteSink, size: number, private descriptor: string | null, keepZeros: boolean,
    private zeroFlag: boolean, private ownsNothing: boolean) {
    super(size, keepZeros);
    const sectors = size / SECTOR;
    this.gdEntries = Math.ceil(sectors / (GTES_PER_GT * GRAIN_SECTORS));
    this.gdSectors = Math.ceil(this.gdEntries * 4 / SECTOR);
    const descSectors = descriptor !== null ? DESC_SECTORS : 0;
    if (descriptor !== null && Buffer.byteLength(descriptor) > DESC_SECTORS * SECTOR) {
      throw new InvalidArgument('vmdk: descriptor too long to embed (backing file name too long?)');
    }
    this.rgdOffset = 1 + descSectors;
    this.gdOffset = this.rgdOffset + this.gdSectors + this.gdEntries * this.gtSectors;
    const tablesEnd = this.gdOffset + this.gdSectors + this.gdEntries * this.gtSectors;
    this.overHead = Math.ceil(tablesEnd / GRAIN_SECTORS) * GRAIN_SECTORS;
    this.next = this.overHead * SECTOR;
  }

  private table(g: number): { t: Uint32Array; i: number } {
    const gdi = Math.floor(g / GTES_PER_GT);
    let t = this.tables.get(gdi);
    if (!t) { t = new Uint32Array(GTES_PER_GT); this.tables.set(gdi, t); }
    return { t, i: g - gdi * GTES_PER_GT };
  }

  protected async grains(first: number, data: Uint8Array): Promise<void> {
    const G = this.G;
    const count = Math.ceil(data.length / G);
    const at = this.next;
    await this.sink.write(data, at);
    if (data.length % G !== 0) {
      // The disk's last grain is stored whole.
      await this.sink.write(new Uint8Array(G - (data.length % G)), at + data.length);
    }
    for (let k = 0; k < count; k++) {
      const { t, i } = this.table(first + k);
      t[i] = (at + k * G) / SECTOR;
    }
    this.next += count * G;
  }

  protected async zeroGrains(first: number, count: number): Promise<void> {
    if (!this.zeroFlag) {
      if (this.keepZeros) {
        for (let k = 0; k < count; k++) await this.grains(first + k, new Uint8Array(Math.min(this.G, this.virtualSize - (first + k) * this.G)));
      }
      return;
    }
    for (let k = 0; k < count; k++) { const { t, i } = this.table(first + k); t[i] = 1; }
  }

  protected async finishTables(): Promise<void> {
    const gtBytes = this.gtSectors * SECTOR;
    const gd = new Uint8Array(this.gdSectors * SECTOR);
    const rgd = new Uint8Array(this.gdSectors * SECTOR);
    const gdv = new DataView(gd.buffer);
    const rgdv = new DataView(rgd.buffer);
    for (let i = 0; i < this.gdEntries; i++) {
      gdv.setUint32(i * 4, this.gdOffset + this.gdSectors + i * this.gtSectors, true);
      rgdv.setUint32(i * 4, this.rgdOffset + this.gdSectors + i * this.gtSectors, true);
    }
    const gt = new Uint8Array(gtBytes);
    const gtv = new DataView(gt.buffer);
    for (const [gdi, t] of [...this.tables].sort((a, b) => a[0] - b[0])) {
      gt.fill(0);
      for (let e = 0; e < t.length; e++) gtv.setUint32(e * 4, t[e]!, true);
      await this.sink.write(gt, (this.gdOffset + this.gdSectors + gdi * this.gtSectors) * SECTOR);
      await this.sink.write(gt, (this.rgdOffset + this.gdSectors + gdi * this.gtSectors) * SECTOR);
    }
    await this.sink.write(gd, this.gdOffset * SECTOR);
    await this.sink.write(rgd, this.rgdOffset * SECTOR);
    if (this.descriptor !== null) {
      const d = new Uint8Array(DESC_SECTORS * SECTOR);
      d.set(Buffer.from(this.descriptor));
      await this.sink.write(d, SECTOR);
    }
    // The header goes last, so an interrupted write never looks like a valid image.
    const h: SparseHeader = {
      version: 1,
      flags: FLAG_NL_DETECT | FLAG_RGD | (this.zeroFlag ? FLAG_ZERO_GRAIN : 0),
      capacity: this.virtualSize / SECTOR,
      grainSize: GRAIN_SECTORS,
      descriptorOffset: this.descriptor !== null ? 1 : 0,
      descriptorSize: this.descriptor !== null ? DESC_SECTORS : 0,
      numGTEsPerGT: GTES_PER_GT,
      rgdOffset: this.rgdOffset,
      gdOffset: this.gdOffset,
      overHead: this.overHead,
      uncleanShutdown: 0,
      compressAlgorithm: COMPRESSION_NONE,
    };
    await this.sink.write(serializeSparseHeader(h), 0);
    if (this.sink.truncate) await this.sink.truncate(this.next);
    void this.ownsNothing;
  }

  async abort(): Promise<void> {
    // Nothing valid was written before finish (the header comes last); cut the file.
    if (this.sink.truncate) await this.sink.truncate(0).catch(() => {});
  }
}

// ---------------------------------------------------------------------------

interface Batch { first: number[]; lens: number[]; done: Promise<Uint8Array[]> }

/** streamOptimized, strictly front to back. */
export class StreamWriter extends GrainChunker {
  private pos = 0;
  private inflight: Batch[] = [];
  private batchBuf: Uint8Array | null = null;
  private batchGrains: number[] = [];
  private batchLens: number[] = [];
  private batchFill = 0;
  private gd: Uint32Array;
  private curGt = -1;
  private curTable = new Uint32Array(GTES_PER_GT);
  private curTableUsed = false;
  private started = false;
  private readonly maxInflight: number;
  private static readonly BATCH_GRAINS = 32;

  constructor(private sink: ByteSink, size: number, private descriptor: string, keepZeros: boolean, private level = 1) {
    super(size, keepZeros);
    this.gd = new Uint32Array(Math.ceil(size / SECTOR / (GTES_PER_GT * GRAIN_SECTORS)));
    this.maxInflight = Math.max(2, compressPool().size * 2);
  }

  private header(gdOffset: number): SparseHeader {
    return {
      version: 3,
      flags: FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS,
      capacity: this.virtualSize / SECTOR,
      grainSize: GRAIN_SECTORS,
      descriptorOffset: 1,
      descriptorSize: DESC_SECTORS,
      numGTEsPerGT: GTES_PER_GT,
      rgdOffset: 0,
      gdOffset,
      overHead: GRAIN_SECTORS,
      uncleanShutdown: 0,
      compressAlgorithm: COMPRESSION_DEFLATE,
    };
  }

  private async out(b: Uint8Array): Promise<void> {
    await this.sink.write(b, this.pos);
    this.pos += b.length;
  }

  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (Buffer.byteLength(this.descriptor) > DESC_SECTORS * SECTOR) throw new InvalidArgument('vmdk: descriptor too long to embed');
    const head = new Uint8Array(GRAIN_SECTORS * SECTOR);
    head.set(serializeSparseHeader(this.header(-1)), 0);
    head.set(Buffer.from(this.descriptor), SECTOR);
    await this.out(head);
  }

  protected async grains(first: number, data: Uint8Array): Promise<void> {
    const G = this.G;
    for (let off = 0; off < data.length; off += G) {
      const n = Math.min(G, data.length - off);
      this.batchBuf ??= new Uint8Array(StreamWriter.BATCH_GRAINS * G);
      this.batchBuf.set(data.subarray(off, off + n), this.batchFill);
      this.batchGrains.push(first + off / G);
      this.batchLens.push(n);
      this.batchFill += n;
      if (this.batchGrains.length === StreamWriter.BATCH_GRAINS) await this.submit();
    }
  }

  private async submit(): Promise<void> {
    if (this.batchGrains.length === 0) return;
    const buf = this.batchBuf!;
    const chunks: Uint8Array[] = [];
    let o = 0;
    for (const n of this.batchLens) { chunks.push(buf.subarray(o, o + n)); o += n; }
    const done = compressPool().run({ op: 'compress', codec: 'deflate', chunks, level: this.level });
    this.inflight.push({ first: this.batchGrains, lens: this.batchLens, done });
    // A fresh buffer: the pool still holds the old one until it posts the job.
    this.batchBuf = null;
    this.batchGrains = [];
    this.batchLens = [];
    this.batchFill = 0;
    while (this.inflight.length >= this.maxInflight) await this.emitOne();
  }

  private async emitOne(): Promise<void> {
    const b = this.inflight.shift()!;
    const outs = await b.done;
    await this.start();
    let total = 0;
    for (const c of outs) total += Math.ceil((12 + c.length) / SECTOR) * SECTOR;
    const buf = new Uint8Array(total);
    const dv = new DataView(buf.buffer);
    let o = 0;
    for (let k = 0; k < outs.length; k++) {
      const g = b.first[k]!;
      const gdi = Math.floor(g / GTES_PER_GT);
      if (gdi !== this.curGt) {
        // Grains arrive in order: the previous table is complete. Flush what we have first.
        if (o > 0) { await this.out(buf.subarray(0, o)); buf.copyWithin(0, o); total -= o; o = 0; }
        await this.flushTable();
        this.curGt = gdi;
      }
      const c = outs[k]!;
      dv.setBigUint64(o, BigInt(g * GRAIN_SECTORS), true);
      dv.setUint32(o + 8, c.length, true);
      buf.set(c, o + 12);
      buf.fill(0, o + 12 + c.length, o + Math.ceil((12 + c.length) / SECTOR) * SECTOR);
      this.curTable[g - gdi * GTES_PER_GT] = (this.pos + o) / SECTOR;
      this.curTableUsed = true;
      o += Math.ceil((12 + c.length) / SECTOR) * SECTOR;
    }
    if (o > 0) await this.out(buf.subarray(0, o));
  }

  private async flushTable(): Promise<void> {
    if (this.curGt < 0 || !this.curTableUsed) return;
    const tableBytes = GTES_PER_GT * 4;
    const b = new Uint8Array(SECTOR + tableBytes);
    b.set(metadataMarker(tableBytes / SECTOR, MARKER_GT), 0);
    const dv = new DataView(b.buffer);
    for (let e = 0; e < GTES_PER_GT; e++) dv.setUint32(SECTOR + e * 4, this.curTable[e]!, true);
    this.gd[this.curGt] = (this.pos + SECTOR) / SECTOR;
    await this.out(b);
    this.curTable.fill(0);
    this.curTableUsed = false;
  }

  protected async zeroGrains(first: number, count: number): Promise<void> {
    // Stream-optimized has no zero-grain marker: unallocated reads as zeros, and with
    // a parent the zeros must be stored.
    if (!this.keepZeros) return;
    for (let k = 0; k < count; k++) await this.grains(first + k, new Uint8Array(Math.min(this.G, this.virtualSize - (first + k) * this.G)));
  }

  protected async finishTables(): Promise<void> {
    await this.submit();
    while (this.inflight.length > 0) await this.emitOne();
    await this.start();
    await this.flushTable();
    const gdSectors = Math.ceil(this.gd.length * 4 / SECTOR);
    const gdBuf = new Uint8Array(SECTOR + gdSectors * SECTOR);
    gdBuf.set(metadataMarker(gdSectors, MARKER_GD), 0);
    const dv = new DataView(gdBuf.buffer);
    for (let i = 0; i < this.gd.length; i++) dv.setUint32(SECTOR + i * 4, this.gd[i]!, true);
    const gdOffset = (this.pos + SECTOR) / SECTOR;
    await this.out(gdBuf);
    const tail = new Uint8Array(3 * SECTOR);
    tail.set(metadataMarker(1, MARKER_FOOTER), 0);
    tail.set(serializeSparseHeader(this.header(gdOffset)), SECTOR);
    tail.set(metadataMarker(0, MARKER_EOS), 2 * SECTOR);
    await this.out(tail);
  }

  async abort(): Promise<void> {
    // Let in-flight compression settle so no worker result is left unobserved.
    await Promise.allSettled(this.inflight.map((b) => b.done));
    this.inflight = [];
    // A seekable target loses its header; a pipe simply ends without a footer, which readers reject.
    if (this.sink.seekable && this.started) await this.sink.write(new Uint8Array(SECTOR), 0).catch(() => {});
    if (this.sink.seekable && this.sink.truncate) await this.sink.truncate(0).catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// Descriptor + extent files: monolithicFlat, twoGbMaxExtentFlat, twoGbMaxExtentSparse.

interface Piece { start: number; length: number; name: string; writer: ImageWriter; sink: ByteSink }

async function createSplit(req: CreateRequest, o: VmdkOptions, descBase: Omit<DescriptorSpec, 'extents'>, keepZeros: boolean): Promise<ImageWriter> {
  if (!req.createSibling) {
    throw new UnsupportedFeature(`vmdk: subformat ${o.subformat} needs to create extent files next to the target, which this target does not allow`);
  }
  if (!req.sink.seekable) throw new UnsupportedFeature(`vmdk: subformat ${o.subformat} cannot be written to a pipe`);
  const base = path.basename(req.sink.name).replace(/\.vmdk$/i, '');
  const flat = o.subformat !== 'twoGbMaxExtentSparse';
  const pieceSize = o.subformat === 'monolithicFlat' ? Math.max(req.virtualSize, 1) : TWO_GB;
  const pieces: Piece[] = [];
  const extents: DescriptorSpec['extents'] = [];
  try {
    const count = Math.max(1, Math.ceil(req.virtualSize / pieceSize));
    for (let i = 0; i < count; i++) {
      const start = i * pieceSize;
      const length = Math.min(pieceSize, req.virtualSize - start);
      const name = o.subformat === 'monolithicFlat' ? `${base}-flat.vmdk` : `${base}-${flat ? 'f' : 's'}${String(i + 1).padStart(3, '0')}.vmdk`;
      const sink = await req.createSibling(name);
      const writer = flat ? new FlatWriter(sink, length) : new SparseWriter(sink, length, null, keepZeros, o.zeroedGrain, false);
      pieces.push({ start, length, name, writer, sink });
      extents.push({ sectors: length / SECTOR, type: (flat ? 'FLAT' : 'SPARSE') as ExtentType, file: name, offset: 0 });
    }
  } catch (err) {
    for (const p of pieces) { await p.sink.close().catch(() => {}); await req.removeSibling?.(p.name).catch(() => {}); }
    throw err;
  }
  const descriptor = serializeDescriptor({ ...descBase, extents });
  return new SplitWriter(req, pieces, descriptor);
}

class SplitWriter implements ImageWriter {
  constructor(private req: CreateRequest, private pieces: Piece[], private descriptor: string) {}

  private async each(offset: number, length: number, fn: (p: Piece, off: number, from: number, n: number) => Promise<void>): Promise<void> {
    for (const p of this.pieces) {
      const s = Math.max(offset, p.start);
      const e = Math.min(offset + length, p.start + p.length);
      if (s < e) await fn(p, s - p.start, s - offset, e - s);
    }
  }

  writeData(offset: number, data: Uint8Array): Promise<void> {
    return this.each(offset, data.length, (p, off, from, n) => p.writer.writeData(off, data.subarray(from, from + n)));
  }

  writeZero(offset: number, length: number): Promise<void> {
    return this.each(offset, length, async (p, off, _from, n) => { await p.writer.writeZero?.(off, n); });
  }

  async finish(): Promise<void> {
    for (const p of this.pieces) {
      await p.writer.finish();
      await p.sink.sync();
      await p.sink.close();
    }
    const d = Buffer.from(this.descriptor);
    await this.req.sink.write(d, 0);
    if (this.req.sink.truncate) await this.req.sink.truncate(d.length);
  }

  async abort(): Promise<void> {
    for (const p of this.pieces) {
      await p.writer.abort().catch(() => {});
      await p.sink.close().catch(() => {});
      await this.req.removeSibling?.(p.name).catch(() => {});
    }
    if (this.req.sink.truncate) await this.req.sink.truncate(0).catch(() => {});
  }
}

/** A flat extent: guest bytes at their offsets; zero chunks stay holes. */
class FlatWriter implements ImageWriter {
  constructor(private sink: ByteSink, private size: number) {}

  async writeData(offset: number, data: Uint8Array): Promise<void> {
    // Runs of non-zero 64 KiB blocks are written; zero blocks stay holes.
    const step = 64 * 1024;
    let runStart = -1;
    for (let o = 0; ; o += step) {
      const zero = o >= data.length || isZero(data.subarray(o, Math.min(data.length, o + step)));
      if (!zero && runStart < 0) runStart = o;
      if (zero && runStart >= 0) {
        await this.sink.write(data.subarray(runStart, Math.min(o, data.length)), offset + runStart);
        runStart = -1;
      }
      if (o >= data.length) break;
    }
  }

  async writeZero(): Promise<void> { /* the file starts as a hole */ }

  async finish(): Promise<void> {
    if (this.sink.truncate) await this.sink.truncate(this.size);
    else throw new UnsupportedFeature('vmdk: flat extent target cannot be sized');
  }

  async abort(): Promise<void> {}
}
