// qcow (version 1), qemu's original copy-on-write format: read only. A two-level table
// (L1 -> L2 -> cluster); an L2 entry with bit 63 set points at a raw-deflate compressed
// cluster whose compressed size is packed into the entry's high bits.

import { inflateRawSync } from 'node:zlib';
import type { BlockDevice, DeviceInfo, Extent, FormatDriver, OpenContext, ProbeInput } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { readExact } from '../../block/bat.js';
import { CorruptImage, InvalidArgument, UnsupportedFeature } from '../../errors.js';

const MAGIC = 0x514649fb; // "QFI\xfb"
const HEADER_SIZE = 48;
const MAX_L1_BYTES = 64 * 1024 * 1024;

interface Header {
  backingOffset: number;
  backingSize: number;
  size: number;
  clusterBits: number;
  l2Bits: number;
  cryptMethod: number;
  l1Offset: number;
}

function u64(dv: DataView, at: number): number {
  return dv.getUint32(at) * 2 ** 32 + dv.getUint32(at + 4);
}

function probe(input: ProbeInput): number {
  if (input.head.length < 8) return 0;
  const dv = new DataView(input.head.buffer, input.head.byteOffset, 8);
  return dv.getUint32(0) === MAGIC && dv.getUint32(4) === 1 ? 100 : 0;
}

/** Where one cluster is: unallocated (0), plain at a host offset, or compressed. */
type Loc = { kind: 'none' } | { kind: 'plain'; host: number } | { kind: 'compressed'; host: number; csize: number };
const NONE: Loc = { kind: 'none' };

class QcowDevice implements BlockDevice {
  readonly format = 'qcow';
  readonly name: string;
  readonly virtualSize: number;
  backing: BlockDevice | null = null;
  backingFilename?: string;
  private readonly cs: number;
  private readonly l2Entries: number;
  private l2Cache = new Map<number, DataView>();
  private lastCluster = -1;
  private lastData: Buffer | null = null;

  constructor(private src: ByteSource, private h: Header, private l1: Float64Array) {
    this.name = src.name;
    this.virtualSize = h.size;
    this.cs = 2 ** h.clusterBits;
    this.l2Entries = 2 ** h.l2Bits;
  }

  private async l2(i: number): Promise<DataView | null> {
    const at = this.l1[i] ?? 0;
    if (at === 0) return null;
    let t = this.l2Cache.get(i);
    if (!t) {
      const b = await readExact(this.src, new Uint8Array(this.l2Entries * 8), at, `L2 table ${i}`);
      t = new DataView(b.buffer);
      if (this.l2Cache.size >= 512) this.l2Cache.delete(this.l2Cache.keys().next().value!);
      this.l2Cache.set(i, t);
    }
    return t;
  }

  private async locate(cluster: number): Promise<Loc> {
    const t = await this.l2(Math.floor(cluster / this.l2Entries));
    if (!t) return NONE;
    const j = (cluster % this.l2Entries) * 8;
    const hi = t.getUint32(j);
    const lo = t.getUint32(j + 4);
    if (hi === 0 && lo === 0) return NONE;
    const where = { file: this.name };
    if (hi & 0x80000000) {
      const e = (BigInt(hi) << 32n) | BigInt(lo);
      const shift = BigInt(63 - this.h.clusterBits);
      const csize = Number((e >> shift) & BigInt(this.cs - 1));
      const host = Number(e & ((1n << shift) - 1n));
      if (csize === 0 || host + csize > this.src.size) throw new CorruptImage(`compressed cluster ${cluster} (${csize} bytes at ${host}) lies outside the file`, where);
      return { kind: 'compressed', host, csize };
    }
    const host = hi * 2 ** 32 + lo;
    if (host % 512 !== 0 || host + this.cs > this.src.size) throw new CorruptImage(`cluster ${cluster} at ${host} lies outside the ${this.src.size}-byte file`, where);
    return { kind: 'plain', host };
  }

  private async inflate(cluster: number, loc: { host: number; csize: number }): Promise<Buffer> {
    if (this.lastCluster === cluster && this.lastData) return this.lastData;
    const c = await readExact(this.src, new Uint8Array(loc.csize), loc.host, `compressed cluster ${cluster}`);
    let out: Buffer;
    try {
      out = inflateRawSync(c, { maxOutputLength: this.cs, finishFlush: 2 /* Z_SYNC_FLUSH: tolerate a missing end marker */ });
    } catch (err) {
      throw new CorruptImage(`compressed cluster ${cluster} does not inflate: ${(err as Error).message}`, { file: this.name, offset: loc.host, cause: err });
    }
    if (out.length !== this.cs) throw new CorruptImage(`compressed cluster ${cluster} inflates to ${out.length} bytes, not ${this.cs}`, { file: this.name, offset: loc.host });
    this.lastCluster = cluster;
    this.lastData = out;
    return out;
  }

  private async readBacking(buf: Uint8Array, offset: number): Promise<void> {
    const b = this.backing;
    const inside = b ? Math.max(0, Math.min(buf.length, b.virtualSize - offset)) : 0;
    if (inside > 0) await b!.read(buf.subarray(0, inside), offset);
    buf.fill(0, inside);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + buf.length > this.virtualSize) throw new InvalidArgument(`read at ${offset}+${buf.length} is outside the disk`, { file: this.name });
    const cs = this.cs;
    const jobs: Promise<void>[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const g = offset + pos;
      const c = Math.floor(g / cs);
      const inC = g - c * cs;
      let end = pos + Math.min(cs - inC, buf.length - pos);
      const loc = await this.locate(c);
      if (loc.kind === 'plain') {
        // Coalesce host-contiguous clusters into one read.
        let next = c + 1;
        let expect = loc.host + cs;
        while (end < buf.length) {
          const l = await this.locate(next);
          if (l.kind !== 'plain' || l.host !== expect) break;
          end += Math.min(cs, buf.length - end); next++; expect += cs;
        }
        jobs.push(readExact(this.src, buf.subarray(pos, end), loc.host + inC, 'qcow data').then(() => {}));
      } else if (loc.kind === 'compressed') {
        const data = await this.inflate(c, loc);
        buf.set(data.subarray(inC, inC + (end - pos)), pos);
      } else {
        let next = c + 1;
        while (end < buf.length && (await this.locate(next)).kind === 'none') { end += Math.min(cs, buf.length - end); next++; }
        jobs.push(this.readBacking(buf.subarray(pos, end), g));
      }
      pos = end;
    }
    await Promise.all(jobs);
  }

  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    const end = Math.min(offset + length, this.virtualSize);
    const cs = this.cs;
    const span = cs * this.l2Entries;
    let cur: Extent | null = null;
    const push = (e: Extent): Extent | null => {
      if (cur && cur.kind === e.kind && !!cur.compressed === !!e.compressed && cur.offset + cur.length === e.offset &&
          (cur.hostOffset === undefined ? e.hostOffset === undefined : cur.hostOffset + cur.length === e.hostOffset)) {
        cur.length += e.length;
        return null;
      }
      const out = cur;
      cur = e;
      return out;
    };
    let g = offset;
    while (g < end) {
      const l1i = Math.floor(g / span);
      if ((this.l1[l1i] ?? 0) === 0) {
        // No L2 table: the whole span is unallocated.
        const n = Math.min(end, (l1i + 1) * span) - g;
        const out = push({ offset: g, length: n, kind: 'unallocated' });
        if (out) yield out;
        g += n;
        continue;
      }
      const c = Math.floor(g / cs);
      const n = Math.min((c + 1) * cs, end) - g;
      const loc = await this.locate(c);
      const e: Extent = loc.kind === 'plain' ? { offset: g, length: n, kind: 'data', hostOffset: loc.host + (g - c * cs) }
        : loc.kind === 'compressed' ? { offset: g, length: n, kind: 'data', compressed: true }
        : { offset: g, length: n, kind: 'unallocated' };
      const out = push(e);
      if (out) yield out;
      g += n;
    }
    if (cur) yield cur;
  }

  describe(): DeviceInfo {
    const info: DeviceInfo = { clusterSize: this.cs };
    if (this.backingFilename) info.backingFilename = this.backingFilename;
    return info;
  }

  async close(): Promise<void> {
    try { await this.backing?.close(); } finally { await this.src.close(); }
  }
}

async function openQcow(src: ByteSource, ctx: OpenContext): Promise<BlockDevice> {
  const f = src.name;
  const raw = await readExact(src, new Uint8Array(HEADER_SIZE), 0, 'qcow header');
  const dv = new DataView(raw.buffer);
  if (dv.getUint32(0) !== MAGIC) throw new CorruptImage('no qcow magic', { file: f, offset: 0 });
  if (dv.getUint32(4) !== 1) throw new UnsupportedFeature(`qcow version ${dv.getUint32(4)} (this driver reads version 1)`, { file: f, offset: 4 });
  const h: Header = {
    backingOffset: u64(dv, 8),
    backingSize: dv.getUint32(16),
    size: u64(dv, 24),
    clusterBits: raw[32]!,
    l2Bits: raw[33]!,
    cryptMethod: dv.getUint32(36),
    l1Offset: u64(dv, 40),
  };
  if (h.clusterBits < 9 || h.clusterBits > 16) throw new CorruptImage(`cluster bits ${h.clusterBits} (must be 9..16)`, { file: f, offset: 32 });
  if (h.l2Bits < 6 || h.l2Bits > 13) throw new CorruptImage(`L2 bits ${h.l2Bits} (must be 6..13)`, { file: f, offset: 33 });
  if (h.cryptMethod !== 0) throw new UnsupportedFeature('encrypted qcow images are not supported', { file: f, offset: 36 });
  if (!Number.isSafeInteger(h.size) || h.size > 2 ** 52) throw new CorruptImage(`disk size ${h.size} is too large`, { file: f, offset: 24 });
  const l1Size = Math.ceil(h.size / 2 ** (h.clusterBits + h.l2Bits));
  if (l1Size * 8 > MAX_L1_BYTES) throw new UnsupportedFeature(`L1 table of ${l1Size} entries exceeds the limit`, { file: f, offset: 24 });
  if (!Number.isSafeInteger(h.l1Offset) || h.l1Offset + l1Size * 8 > src.size) {
    throw new CorruptImage(`L1 table (${l1Size} entries at ${h.l1Offset}) lies outside the ${src.size}-byte file`, { file: f, offset: 40 });
  }
  const l1Raw = await readExact(src, new Uint8Array(l1Size * 8), h.l1Offset, 'qcow L1 table');
  const l1v = new DataView(l1Raw.buffer);
  const l1 = new Float64Array(l1Size);
  const l2Bytes = 8 * 2 ** h.l2Bits;
  for (let i = 0; i < l1Size; i++) {
    const v = u64(l1v, i * 8);
    if (v !== 0 && (v % 512 !== 0 || v + l2Bytes > src.size)) {
      throw new CorruptImage(`L1 entry ${i} points to ${v}, outside the file`, { file: f, offset: h.l1Offset + i * 8 });
    }
    l1[i] = v;
  }
  const dev = new QcowDevice(src, h, l1);
  if (h.backingOffset !== 0) {
    if (h.backingSize === 0 || h.backingSize > 1023 || h.backingOffset + h.backingSize > src.size) {
      throw new CorruptImage(`backing file name (${h.backingSize} bytes at ${h.backingOffset}) is invalid`, { file: f, offset: 8 });
    }
    const name = Buffer.from(await readExact(src, new Uint8Array(h.backingSize), h.backingOffset, 'backing file name')).toString('utf8');
    dev.backingFilename = name;
    if (ctx.openBacking) dev.backing = await ctx.openReference(name, f, undefined, 'backing file');
  }
  return dev;
}

export const qcowFormat: FormatDriver = {
  name: 'qcow',
  description: 'QEMU copy-on-write version 1 (read only)',
  probe,
  open: openQcow,
};
