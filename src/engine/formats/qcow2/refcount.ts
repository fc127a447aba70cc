// Refcount table and blocks: reading entries of any width (1..64 bits), and, for
// writable images, updating them and allocating clusters at the end of the file.

import { CorruptImage, UnsupportedFeature } from '../../errors.js';
import type { ByteSource } from '../../io/source.js';
import type { HostFile } from './hostfile.js';
import { TWO32 } from './constants.js';

/** Reads entry `i` of a refcount block with 2^order-bit entries. */
export function getRefcount(block: Uint8Array, dv: DataView, i: number, order: number): number {
  switch (order) {
    case 0: return (block[i >> 3]! >> (i & 7)) & 1;
    case 1: return (block[i >> 2]! >> ((i & 3) * 2)) & 3;
    case 2: return (block[i >> 1]! >> ((i & 1) * 4)) & 15;
    case 3: return block[i]!;
    case 4: return dv.getUint16(i * 2);
    case 5: return dv.getUint32(i * 4);
    default: return dv.getUint32(i * 8) * TWO32 + dv.getUint32(i * 8 + 4);
  }
}

/** Writes entry `i`; returns the byte range of the block that changed. */
export function putRefcount(block: Uint8Array, dv: DataView, i: number, order: number, v: number): [number, number] {
  if (order < 3) {
    const w = 1 << order, per = 8 / w, byte = Math.floor(i / per), shift = (i % per) * w, mask = ((1 << w) - 1) << shift;
    block[byte] = (block[byte]! & ~mask) | ((v << shift) & mask);
    return [byte, 1];
  }
  switch (order) {
    case 3: block[i] = v; return [i, 1];
    case 4: dv.setUint16(i * 2, v); return [i * 2, 2];
    case 5: dv.setUint32(i * 4, v); return [i * 4, 4];
    default: dv.setUint32(i * 8, Math.floor(v / TWO32)); dv.setUint32(i * 8 + 4, v >>> 0); return [i * 8, 8];
  }
}

export function refcountMax(order: number): number {
  return order >= 6 ? Number.MAX_SAFE_INTEGER : 2 ** (1 << order) - 1;
}

interface Block { buf: Uint8Array; dv: DataView }

export class Refcounts {
  readonly clusterSize: number;
  /** Entries per refcount block. */
  readonly perBlock: number;
  readonly max: number;
  private blocks = new Map<number, Block>();
  /** First free byte at the end of the file, where new clusters go. */
  end = 0;
  private deferTable = false;

  private constructor(
    readonly file: string,
    private src: ByteSource,
    readonly clusterBits: number,
    readonly order: number,
    public tableOffset: number,
    public table: Uint8Array,
  ) {
    this.clusterSize = 2 ** clusterBits;
    this.perBlock = this.clusterSize * 8 / (1 << order);
    this.max = refcountMax(order);
  }

  /** Loads the refcount table (its bounds were validated with the header). */
  static async load(file: string, src: ByteSource, clusterBits: number, order: number, tableOffset: number, tableClusters: number): Promise<Refcounts> {
    const table = new Uint8Array(tableClusters * 2 ** clusterBits);
    const n = await src.read(table, tableOffset);
    if (n !== table.length) throw new CorruptImage('refcount table is truncated', { file, offset: tableOffset });
    const r = new Refcounts(file, src, clusterBits, order, tableOffset, table);
    r.end = Math.ceil(src.size / r.clusterSize) * r.clusterSize;
    return r;
  }

  get tableEntries(): number { return this.table.length / 8; }

  blockOffset(ti: number): number {
    if (ti >= this.tableEntries) return 0;
    const dv = new DataView(this.table.buffer, this.table.byteOffset);
    const v = dv.getUint32(ti * 8) * TWO32 + ((dv.getUint32(ti * 8 + 4) & 0xfffffe00) >>> 0);
    if (v === 0) return 0;
    if (v % this.clusterSize !== 0) throw new CorruptImage(`refcount table entry ${ti} points to misaligned refcount block ${v}`, { file: this.file, offset: this.tableOffset + ti * 8 });
    if (v + this.clusterSize > this.src.size) throw new CorruptImage(`refcount block ${ti} at ${v} lies past the end of the file`, { file: this.file, offset: this.tableOffset + ti * 8 });
    return v;
  }

  private async block(off: number): Promise<Block> {
    let b = this.blocks.get(off);
    if (b) { this.blocks.delete(off); this.blocks.set(off, b); return b; }
    const buf = new Uint8Array(this.clusterSize);
    if (await this.src.read(buf, off) !== this.clusterSize) throw new CorruptImage(`refcount block at ${off} is truncated`, { file: this.file, offset: off });
    b = { buf, dv: new DataView(buf.buffer) };
    this.blocks.set(off, b);
    if (this.blocks.size > 64) this.blocks.delete(this.blocks.keys().next().value!);
    return b;
  }

  forget(): void { this.blocks.clear(); }

  async get(cluster: number): Promise<number> {
    const off = this.blockOffset(Math.floor(cluster / this.perBlock));
    if (off === 0) return 0;
    const b = await this.block(off);
    return getRefcount(b.buf, b.dv, cluster % this.perBlock, this.order);
  }

  /**
   * Sets a refcount, allocating a refcount block (and growing the table) when needed.
   * Writes through to `io` immediately.
   */
  async set(io: HostFile, cluster: number, v: number, onTableMoved: (offset: number, clusters: number) => Promise<void>): Promise<void> {
    if (v > this.max) throw new UnsupportedFeature(`refcount overflow for cluster ${cluster} (refcount_bits=${1 << this.order} allows at most ${this.max})`, { file: this.file });
    const ti = Math.floor(cluster / this.perBlock);
    if (ti >= this.tableEntries) {
      if (v === 0) return;
      await this.grow(io, ti, onTableMoved);
    }
    let off = this.blockOffset(ti);
    if (off === 0) {
      if (v === 0) return;
      off = this.end;
      this.end += this.clusterSize;
      const buf = new Uint8Array(this.clusterSize);
      await io.write(buf, off);
      this.blocks.set(off, { buf, dv: new DataView(buf.buffer) });
      await this.setTableEntry(io, ti, off);
      // The new block is itself a cluster that needs a refcount.
      await this.set(io, off / this.clusterSize, 1, onTableMoved);
    }
    const b = await this.block(off);
    const [at, len] = putRefcount(b.buf, b.dv, cluster % this.perBlock, this.order, v);
    await io.write(b.buf.subarray(at, at + len), off + at);
  }

  async add(io: HostFile, cluster: number, delta: number, onTableMoved: (offset: number, clusters: number) => Promise<void>): Promise<number> {
    const cur = await this.get(cluster);
    const v = cur + delta;
    if (v < 0) throw new CorruptImage(`refcount of cluster ${cluster} would drop below zero`, { file: this.file });
    await this.set(io, cluster, v, onTableMoved);
    return v;
  }

  private async setTableEntry(io: HostFile, ti: number, off: number): Promise<void> {
    const dv = new DataView(this.table.buffer, this.table.byteOffset);
    dv.setUint32(ti * 8, Math.floor(off / TWO32));
    dv.setUint32(ti * 8 + 4, off >>> 0);
    if (!this.deferTable) await io.write(this.table.subarray(ti * 8, ti * 8 + 8), this.tableOffset + ti * 8);
  }

  /** Allocates `n` contiguous clusters at the end of the file with refcount 1. */
  async alloc(io: HostFile, n: number, onTableMoved: (offset: number, clusters: number) => Promise<void>): Promise<number> {
    const start = this.end;
    this.end += n * this.clusterSize;
    for (let i = 0; i < n; i++) await this.set(io, start / this.clusterSize + i, 1, onTableMoved);
    return start;
  }

  /** Moves the refcount table to a larger one at the end of the file. */
  private async grow(io: HostFile, neededIndex: number, onTableMoved: (offset: number, clusters: number) => Promise<void>): Promise<void> {
    const perCluster = this.clusterSize / 8;
    const entries = Math.ceil(Math.max(neededIndex + 2, this.tableEntries * 2) / perCluster) * perCluster;
    const oldOffset = this.tableOffset, oldClusters = this.table.length / this.clusterSize;
    const newTable = new Uint8Array(entries * 8);
    newTable.set(this.table);
    const newOffset = this.end;
    this.end += newTable.length;
    this.table = newTable;
    this.tableOffset = newOffset;
    this.deferTable = true;
    try {
      for (let c = 0; c < newTable.length / this.clusterSize; c++) await this.set(io, newOffset / this.clusterSize + c, 1, onTableMoved);
    } finally {
      this.deferTable = false;
    }
    await io.write(newTable, newOffset);
    await onTableMoved(newOffset, newTable.length / this.clusterSize);
    for (let c = 0; c < oldClusters; c++) await this.set(io, oldOffset / this.clusterSize + c, 0, onTableMoved);
  }
}
