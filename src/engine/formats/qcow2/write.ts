// In-place updates of an opened image: guest writes (allocation, COW from backing or
// shared clusters), resize, internal snapshots, and the refcount/flag fixes check uses.
// Clusters are always allocated at the end of the file; correctness over cleverness.

import { Conflict, CorruptImage, InvalidArgument, UnsupportedFeature } from '../../errors.js';
import type { Qcow2Device } from './device.js';
import { hostFile, type HostFile } from './hostfile.js';
import { Refcounts } from './refcount.js';
import { HI_COMPRESSED, HI_COPIED, TWO32, INCOMPAT_DIRTY } from './constants.js';
import { compressedDesc, l1EntryOffset, SEG_DATA, SEG_COMPRESSED, type L2Table } from './map.js';
import { putU64 } from './header.js';
import { serializeSnapshotTable, type SnapshotEntry } from './snapshot-table.js';

export class Writer {
  private readonly cs: number;
  private tmp: Uint8Array;

  private constructor(private dev: Qcow2Device, private io: HostFile, private refs: Refcounts) {
    this.cs = dev.h.clusterSize;
    this.tmp = new Uint8Array(this.cs);
  }

  static async create(dev: Qcow2Device): Promise<Writer> {
    const io = hostFile(dev.src);
    const h = dev.h;
    const refs = await Refcounts.load(dev.name, dev.src, h.clusterBits, h.refcountOrder, h.refcountTableOffset, h.refcountTableClusters);
    // We keep no auto-clear structures (bitmaps) up to date, so the spec says: clear their bits first.
    if (h.version === 3 && h.autoclear !== 0) {
      await io.write(new Uint8Array(8), 88);
      h.autoclear = 0;
    }
    return new Writer(dev, io, refs);
  }

  private onTableMoved = async (offset: number, clusters: number): Promise<void> => {
    const b = new Uint8Array(12);
    const dv = new DataView(b.buffer);
    putU64(dv, 0, offset);
    dv.setUint32(8, clusters);
    await this.io.write(b, 48);
    this.dev.h.refcountTableOffset = offset;
    this.dev.h.refcountTableClusters = clusters;
  };

  async setRefcount(cluster: number, v: number): Promise<void> { await this.refs.set(this.io, cluster, v, this.onTableMoved); }
  private addRef(cluster: number, d: number): Promise<number> { return this.refs.add(this.io, cluster, d, this.onTableMoved); }
  private alloc(n: number): Promise<number> { return this.refs.alloc(this.io, n, this.onTableMoved); }

  async flush(): Promise<void> { await this.serial(() => this.io.sync()); }

  private queue: Promise<unknown> = Promise.resolve();
  /** Metadata updates are read-modify-write: run the public operations one at a time. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  async clearDirty(): Promise<void> {
    const h = this.dev.h;
    if (h.version !== 3 || !(h.incompatible & INCOMPAT_DIRTY)) return;
    h.incompatible &= ~INCOMPAT_DIRTY;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, h.incompatible);
    await this.io.write(b, 76);
  }

  // ---- L1/L2 entries -------------------------------------------------------

  private async setL1(i: number, off: number, copied: boolean): Promise<void> {
    const dv = this.dev.map.l1Dv();
    dv.setUint32(i * 8, (copied ? HI_COPIED : 0) | Math.floor(off / TWO32));
    dv.setUint32(i * 8 + 4, off >>> 0);
    await this.io.write(this.dev.map.l1.subarray(i * 8, i * 8 + 8), this.dev.h.l1TableOffset + i * 8);
  }

  private async writeEntry(t: L2Table, idx: number): Promise<void> {
    await this.io.write(t.buf.subarray(idx, idx + this.dev.map.entryBytes), t.offset + idx);
  }

  /** The active L2 table for guest cluster `ci`, allocated or copied so it can be changed. */
  private async l2Writable(ci: number): Promise<L2Table> {
    const map = this.dev.map;
    const li = Math.floor(ci / map.l2Entries);
    if (li >= map.l1Size) throw new CorruptImage(`guest cluster ${ci} is beyond the L1 table`, { file: this.dev.name });
    const hi = map.l1Dv().getUint32(li * 8);
    const off = map.l2Offset(li, this.io.size);
    if (off === 0) {
      const n = await this.alloc(1);
      const buf = new Uint8Array(this.cs);
      await this.io.write(buf, n);
      const t = { offset: n, buf, dv: new DataView(buf.buffer) };
      map.setCached(t);
      await this.setL1(li, n, true);
      return t;
    }
    if (hi & HI_COPIED) return map.loadL2(off);
    const ref = await this.refs.get(off / this.cs);
    if (ref === 1) { await this.setL1(li, off, true); return map.loadL2(off); }
    // Shared with a snapshot: copy the table. Data clusters keep their counts (they are
    // counted once per L1 table that reaches them).
    const old = await map.loadL2(off);
    const n = await this.alloc(1);
    const buf = old.buf.slice();
    await this.io.write(buf, n);
    const t = { offset: n, buf, dv: new DataView(buf.buffer) };
    map.setCached(t, off);
    await this.setL1(li, n, true);
    await this.addRef(off / this.cs, -1);
    return t;
  }

  /** Drops one reference to what an L2 entry pointed to. */
  private async release(hi: number, lo: number): Promise<void> {
    if (hi & HI_COMPRESSED) {
      const { coff, sectors } = compressedDesc(hi, lo, this.dev.h.clusterBits);
      const start = coff - (coff % 512);
      for (let c = Math.floor(start / this.cs); c <= Math.floor((start + sectors * 512 - 1) / this.cs); c++) await this.addRef(c, -1);
      return;
    }
    const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
    if (host) await this.addRef(host / this.cs, -1);
  }

  // ---- guest writes ----------------------------------------------------------

  write(buf: Uint8Array, offset: number): Promise<void> {
    return this.serial(() => this.writeLocked(buf, offset));
  }

  private async writeLocked(buf: Uint8Array, offset: number): Promise<void> {
    let p = 0;
    while (p < buf.length) {
      const g = offset + p, ci = Math.floor(g / this.cs), inOff = g - ci * this.cs;
      if (inOff === 0 && buf.length - p >= this.cs) {
        p += await this.writeFullClusters(ci, buf.subarray(p, p + Math.floor((buf.length - p) / this.cs) * this.cs));
        continue;
      }
      const n = Math.min(this.cs - inOff, buf.length - p);
      await this.writeCluster(ci, inOff, buf.subarray(p, p + n));
      p += n;
    }
  }

  /** An exclusively owned plain data cluster that can be overwritten in place (else 0). */
  private inPlaceHost(t: L2Table, idx: number): number {
    const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
    if ((hi & HI_COMPRESSED) || !(hi & HI_COPIED)) return 0;
    const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
    const plain = this.dev.map.geo.extendedL2 ? t.dv.getUint32(idx + 12) === 0xffffffff : (lo & 1) === 0;
    return plain ? host : 0;
  }

  /**
   * Whole clusters from `ci` on, within one L2 table: in-place runs become one pwrite,
   * and clusters needing allocation get one contiguous allocation and one pwrite.
   * Returns the bytes consumed.
   */
  private async writeFullClusters(ci: number, data: Uint8Array): Promise<number> {
    const cs = this.cs, map = this.dev.map;
    const t = await this.l2Writable(ci);
    const first = ci % map.l2Entries;
    const max = Math.min(data.length / cs, map.l2Entries - first);
    const host0 = this.inPlaceHost(t, first * map.entryBytes);
    let k = 1;
    if (host0) {
      while (k < max && this.inPlaceHost(t, (first + k) * map.entryBytes) === host0 + k * cs) k++;
      await this.io.write(data.subarray(0, k * cs), host0);
      return k * cs;
    }
    while (k < max && this.inPlaceHost(t, (first + k) * map.entryBytes) === 0) k++;
    const target = await this.alloc(k);
    await this.io.write(data.subarray(0, k * cs), target);
    const old: number[] = [];
    for (let j = 0; j < k; j++) {
      const idx = (first + j) * map.entryBytes;
      old.push(t.dv.getUint32(idx), t.dv.getUint32(idx + 4));
      const h = target + j * cs;
      t.dv.setUint32(idx, HI_COPIED | Math.floor(h / TWO32));
      t.dv.setUint32(idx + 4, h >>> 0);
      if (map.geo.extendedL2) { t.dv.setUint32(idx + 8, 0); t.dv.setUint32(idx + 12, 0xffffffff); }
    }
    const from = first * map.entryBytes, to = (first + k) * map.entryBytes;
    await this.io.write(t.buf.subarray(from, to), t.offset + from);
    for (let j = 0; j < k; j++) await this.release(old[2 * j]!, old[2 * j + 1]!);
    return k * cs;
  }

  private async writeCluster(ci: number, inOff: number, data: Uint8Array): Promise<void> {
    const cs = this.cs, map = this.dev.map, ext = map.geo.extendedL2;
    const t = await this.l2Writable(ci);
    const idx = (ci % map.l2Entries) * map.entryBytes;
    const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
    const host = hi & HI_COMPRESSED ? 0 : (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
    const exclusive = host !== 0 && (hi & HI_COPIED) !== 0;
    const plainData = exclusive && (ext ? t.dv.getUint32(idx + 12) === 0xffffffff : (lo & 1) === 0);
    if (plainData) { await this.io.write(data, host + inOff); return; }
    // Build the whole cluster: what the guest sees now, with the new bytes on top.
    const full = this.tmp;
    if (data.length < cs) {
      const clusterLen = Math.min(cs, this.dev.virtualSize - ci * cs);
      full.fill(0);
      await this.dev.read(full.subarray(0, clusterLen), ci * cs);
    }
    full.set(data, inOff);
    const target = exclusive ? host : await this.alloc(1);
    await this.io.write(full, target);
    t.dv.setUint32(idx, HI_COPIED | Math.floor(target / TWO32));
    t.dv.setUint32(idx + 4, target >>> 0);
    if (ext) { t.dv.setUint32(idx + 8, 0); t.dv.setUint32(idx + 12, 0xffffffff); }
    await this.writeEntry(t, idx);
    if (!exclusive) await this.release(hi, lo);
  }

  /** Makes [from, to) read as zeros: zero flags for whole clusters on v3, written zeros otherwise. */
  private async zeroRange(from: number, to: number): Promise<void> {
    const cs = this.cs, map = this.dev.map;
    const v3 = this.dev.h.version === 3;
    let pos = from;
    while (pos < to) {
      const ci = Math.floor(pos / cs), inOff = pos - ci * cs;
      const n = Math.min(cs - inOff, to - pos);
      if (v3 && inOff === 0 && (n === cs || pos + n === this.dev.virtualSize)) {
        const t = await this.l2Writable(ci);
        const idx = (ci % map.l2Entries) * map.entryBytes;
        const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
        t.buf.fill(0, idx, idx + map.entryBytes);
        if (map.geo.extendedL2) t.dv.setUint32(idx + 8, 0xffffffff);
        else t.dv.setUint32(idx + 4, 1);
        await this.writeEntry(t, idx);
        await this.release(hi, lo);
      } else {
        // Only touch what is not already zero-reading without a backing file.
        let needed = this.dev.backing !== null;
        if (!needed) await map.walk(pos, n, (kind) => { if (kind === SEG_DATA || kind === SEG_COMPRESSED) needed = true; });
        if (needed) await this.writeLocked(new Uint8Array(n), pos);
      }
      pos += n;
    }
  }

  // ---- resize ----------------------------------------------------------------

  private async writeHeaderSize(size: number): Promise<void> {
    const b = new Uint8Array(8);
    putU64(new DataView(b.buffer), 0, size);
    await this.io.write(b, 24);
    this.dev.h.size = size;
    this.dev.virtualSize = size;
  }

  /** Replaces the active L1 table with a larger one of `entries` entries. */
  private async growL1(entries: number): Promise<void> {
    const h = this.dev.h, map = this.dev.map;
    const clusters = Math.ceil(entries * 8 / this.cs);
    const l1 = new Uint8Array(entries * 8);
    l1.set(map.l1);
    const off = await this.alloc(clusters);
    const padded = new Uint8Array(clusters * this.cs);
    padded.set(l1);
    await this.io.write(padded, off);
    const b = new Uint8Array(12);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, entries);
    putU64(dv, 4, off);
    await this.io.write(b, 36);
    const oldOff = h.l1TableOffset, oldClusters = Math.ceil(h.l1Size * 8 / this.cs);
    h.l1Size = entries;
    h.l1TableOffset = off;
    map.l1 = l1;
    for (let c = 0; c < oldClusters; c++) await this.addRef(oldOff / this.cs + c, -1);
  }

  resize(newSize: number, shrink: boolean): Promise<void> {
    return this.serial(() => this.resizeLocked(newSize, shrink));
  }

  private async resizeLocked(newSize: number, shrink: boolean): Promise<void> {
    const dev = this.dev, map = dev.map, cs = this.cs;
    if (!Number.isSafeInteger(newSize) || newSize < 0) throw new InvalidArgument(`invalid size ${newSize}`, { file: dev.name });
    if (newSize % 512 !== 0) throw new InvalidArgument('qcow2 sizes must be a multiple of 512 bytes', { file: dev.name });
    const maxSize = (32 * 1024 * 1024 / 8) * map.l1Span;
    if (newSize > maxSize) throw new InvalidArgument(`size ${newSize} exceeds the qcow2 limit ${maxSize} for this cluster size`, { file: dev.name });
    if (newSize === dev.virtualSize) return;
    if (newSize > dev.virtualSize) {
      const oldSize = dev.virtualSize;
      const need = Math.ceil(newSize / map.l1Span);
      if (need > map.l1Size) await this.growL1(need);
      await this.writeHeaderSize(newSize);
      // The new area must read as zeros: not stale bytes left in the old last cluster
      // (after a shrink), nor the backing file's data (like qemu since 5.1).
      const tailEnd = Math.min(newSize, Math.ceil(oldSize / cs) * cs);
      if (tailEnd > oldSize) await this.zeroRange(oldSize, tailEnd);
      if (dev.backing && newSize > tailEnd) await this.zeroRange(tailEnd, newSize);
      return;
    }
    if (!shrink) throw new InvalidArgument('shrinking would lose data; pass shrink to confirm', { file: dev.name });
    if (dev.snapshotEntries.length) throw new UnsupportedFeature('cannot shrink an image that has internal snapshots', { file: dev.name });
    // Discard whole clusters past the new end, then L2 tables past it.
    const firstCluster = Math.ceil(newSize / cs), endCluster = Math.ceil(dev.virtualSize / cs);
    for (let ci = firstCluster; ci < endCluster;) {
      const li = Math.floor(ci / map.l2Entries);
      const spanEnd = Math.min(endCluster, (li + 1) * map.l2Entries);
      if (map.l2Offset(li, this.io.size) === 0) { ci = spanEnd; continue; }
      const t = await this.l2Writable(ci);
      let changed = false;
      for (; ci < spanEnd; ci++) {
        const idx = (ci % map.l2Entries) * map.entryBytes;
        const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
        if (hi === 0 && lo === 0 && (!map.geo.extendedL2 || t.dv.getUint32(idx + 8) === 0)) continue;
        t.buf.fill(0, idx, idx + map.entryBytes);
        changed = true;
        await this.release(hi, lo);
      }
      if (changed) await this.io.write(t.buf, t.offset);
    }
    const keepL1 = Math.ceil(newSize / map.l1Span);
    for (let li = keepL1; li < map.l1Size; li++) {
      const off = map.l2Offset(li, this.io.size);
      if (off === 0) continue;
      await this.setL1(li, 0, false);
      map.setCached(null, off);
      await this.addRef(off / cs, -1);
    }
    await this.writeHeaderSize(newSize);
  }

  // ---- snapshots -------------------------------------------------------------

  /** Refuses (before changing anything) when one more reference to a tree would overflow refcount_bits. */
  private async checkHeadroom(l1: Uint8Array): Promise<void> {
    const map = this.dev.map, dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    const adds = new Map<number, number>();
    const add = (c: number) => adds.set(c, (adds.get(c) ?? 0) + 1);
    for (let li = 0; li < l1.length / 8; li++) {
      const off = l1EntryOffset(dv.getUint32(li * 8), dv.getUint32(li * 8 + 4));
      if (off === 0) continue;
      add(off / this.cs);
      const t = await map.loadL2(off);
      for (let k = 0; k < map.l2Entries; k++) {
        const idx = k * map.entryBytes;
        const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
        if (hi & HI_COMPRESSED) {
          const { coff, sectors } = compressedDesc(hi, lo, this.dev.h.clusterBits);
          const start = coff - (coff % 512);
          for (let c = Math.floor(start / this.cs); c <= Math.floor((start + sectors * 512 - 1) / this.cs); c++) add(c);
          continue;
        }
        const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
        if (host) add(host / this.cs);
      }
    }
    for (const [c, n] of adds) {
      if ((await this.refs.get(c)) + n > this.refs.max) {
        throw new UnsupportedFeature(`refcount_bits=${1 << this.dev.h.refcountOrder} cannot count another reference to cluster ${c}; this image cannot hold more snapshots`, { file: this.dev.name });
      }
    }
  }

  /** Adds `addend` to the refcount of every L2 table and cluster reachable from an L1 table. */
  private async updateTree(l1: Uint8Array, addend: number): Promise<void> {
    const map = this.dev.map, dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    for (let li = 0; li < l1.length / 8; li++) {
      const off = l1EntryOffset(dv.getUint32(li * 8), dv.getUint32(li * 8 + 4));
      if (off === 0) continue;
      const t = await map.loadL2(off);
      for (let k = 0; k < map.l2Entries; k++) {
        const idx = k * map.entryBytes;
        const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
        if (hi & HI_COMPRESSED) {
          const { coff, sectors } = compressedDesc(hi, lo, this.dev.h.clusterBits);
          const start = coff - (coff % 512);
          for (let c = Math.floor(start / this.cs); c <= Math.floor((start + sectors * 512 - 1) / this.cs); c++) await this.addRef(c, addend);
          continue;
        }
        const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
        if (host) await this.addRef(host / this.cs, addend);
      }
      await this.addRef(off / this.cs, addend);
    }
  }

  /** Rewrites COPIED flags of the active L1 and its L2 tables from the refcounts. */
  private async fixCopiedFlags(): Promise<void> {
    const map = this.dev.map, l1dv = map.l1Dv();
    for (let li = 0; li < map.l1Size; li++) {
      const off = map.l2Offset(li, this.io.size);
      if (off === 0) continue;
      const copied = (await this.refs.get(off / this.cs)) === 1;
      if (((l1dv.getUint32(li * 8) & HI_COPIED) !== 0) !== copied) await this.setL1(li, off, copied);
      const t = await map.loadL2(off);
      let changed = false;
      for (let k = 0; k < map.l2Entries; k++) {
        const idx = k * map.entryBytes;
        const hi = t.dv.getUint32(idx), lo = t.dv.getUint32(idx + 4);
        if (hi & HI_COMPRESSED) continue;
        const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
        if (!host) continue;
        const want = (await this.refs.get(host / this.cs)) === 1;
        if (((hi & HI_COPIED) !== 0) !== want) { t.dv.setUint32(idx, want ? hi | HI_COPIED : hi & ~HI_COPIED); changed = true; }
      }
      if (changed) await this.io.write(t.buf, t.offset);
    }
  }

  async fixCopiedL1(li: number, copied: boolean): Promise<void> {
    const dv = this.dev.map.l1Dv();
    await this.setL1(li, l1EntryOffset(dv.getUint32(li * 8), dv.getUint32(li * 8 + 4)), copied);
  }

  async fixCopiedL2(l2: number, k: number, copied: boolean): Promise<void> {
    const t = await this.dev.map.loadL2(l2);
    const idx = k * this.dev.map.entryBytes;
    const hi = t.dv.getUint32(idx);
    t.dv.setUint32(idx, copied ? (hi | HI_COPIED) >>> 0 : hi & ~HI_COPIED);
    await this.writeEntry(t, idx);
  }

  /** Writes the snapshot table at a new place, points the header at it, frees the old one. */
  private async writeSnapshotTable(entries: SnapshotEntry[]): Promise<void> {
    const h = this.dev.h;
    const bytes = serializeSnapshotTable(entries);
    const clusters = Math.ceil(bytes.length / this.cs);
    const off = clusters ? await this.alloc(clusters) : 0;
    if (clusters) await this.io.write(bytes, off);
    const b = new Uint8Array(12);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, entries.length);
    putU64(dv, 4, off);
    await this.io.write(b, 60);
    const oldOff = h.snapshotsOffset, oldClusters = Math.ceil(this.dev.snapshotTableBytes / this.cs);
    h.snapshotsOffset = off;
    h.nbSnapshots = entries.length;
    this.dev.snapshotEntries = entries;
    this.dev.snapshotTableBytes = bytes.length;
    for (let c = 0; c < oldClusters; c++) await this.addRef(oldOff / this.cs + c, -1);
  }

  snapshotCreate(name: string): Promise<void> {
    return this.serial(() => this.snapshotCreateLocked(name));
  }

  private async snapshotCreateLocked(name: string): Promise<void> {
    const dev = this.dev, map = dev.map;
    if (!name) throw new InvalidArgument('snapshot name must not be empty', { file: dev.name });
    if (dev.snapshotEntries.some((s) => s.name === name)) throw new Conflict(`snapshot '${name}' already exists`, { file: dev.name });
    if (dev.snapshotEntries.length >= 65536) throw new UnsupportedFeature('too many snapshots', { file: dev.name });
    const l1 = map.l1.slice();
    await this.checkHeadroom(l1);
    const clusters = Math.ceil(l1.length / this.cs);
    const l1Off = clusters ? await this.alloc(clusters) : 0;
    if (clusters) {
      const padded = new Uint8Array(clusters * this.cs);
      padded.set(l1);
      await this.io.write(padded, l1Off);
    }
    await this.updateTree(l1, 1);
    await this.fixCopiedFlags();
    const now = Date.now();
    const id = String(dev.snapshotEntries.reduce((m, s) => Math.max(m, Number(s.id) || 0), 0) + 1);
    await this.writeSnapshotTable([...dev.snapshotEntries, {
      l1TableOffset: l1Off, l1Size: l1.length / 8, id, name,
      dateSec: Math.floor(now / 1000), dateNsec: (now % 1000) * 1e6, vmClockNsec: 0, vmStateSize: 0,
      diskSize: dev.virtualSize, icount: 0, extraTail: new Uint8Array(0),
    }]);
  }

  snapshotApply(e: SnapshotEntry): Promise<void> {
    return this.serial(() => this.snapshotApplyLocked(e));
  }

  private async snapshotApplyLocked(e: SnapshotEntry): Promise<void> {
    const dev = this.dev, map = dev.map;
    const snapL1 = new Uint8Array(e.l1Size * 8);
    if (snapL1.length && await this.io.read(snapL1, e.l1TableOffset) !== snapL1.length) throw new CorruptImage('snapshot L1 table is truncated', { file: dev.name, offset: e.l1TableOffset });
    await this.checkHeadroom(snapL1);
    if (e.l1Size > map.l1Size) await this.growL1(e.l1Size);
    // Take the new references before dropping the old ones so shared clusters never hit zero.
    await this.updateTree(snapL1, 1);
    await this.updateTree(map.l1.slice(), -1);
    const l1 = new Uint8Array(map.l1.length);
    l1.set(snapL1);
    map.l1 = l1;
    map.dropCache();
    await this.io.write(l1, dev.h.l1TableOffset);
    await this.fixCopiedFlags();
    if (e.diskSize !== undefined && e.diskSize !== dev.virtualSize) await this.writeHeaderSize(e.diskSize);
  }

  snapshotDelete(e: SnapshotEntry): Promise<void> {
    return this.serial(() => this.snapshotDeleteLocked(e));
  }

  private async snapshotDeleteLocked(e: SnapshotEntry): Promise<void> {
    const dev = this.dev;
    const l1 = new Uint8Array(e.l1Size * 8);
    if (l1.length && await this.io.read(l1, e.l1TableOffset) !== l1.length) throw new CorruptImage('snapshot L1 table is truncated', { file: dev.name, offset: e.l1TableOffset });
    await this.writeSnapshotTable(dev.snapshotEntries.filter((s) => s !== e));
    await this.updateTree(l1, -1);
    for (let c = 0; c < Math.ceil(l1.length / this.cs); c++) await this.addRef(e.l1TableOffset / this.cs + c, -1);
    await this.fixCopiedFlags();
  }
}
