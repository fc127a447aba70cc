// The opened VMDK: a list of extents laid end to end in guest order (one hosted sparse
// extent for monolithicSparse/streamOptimized, several files for the twoGbMaxExtent and
// flat flavours). Reads are split per extent, then per run of grains: contiguous
// uncompressed grains become one read, compressed grains are inflated in batches on
// the worker pool.

import zlib from 'node:zlib';
import type { BlockDevice, CheckReport, DeviceInfo, Extent } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { CorruptImage, ImgportError, UnsupportedFeature } from '../../errors.js';
import { compressPool } from '../../compress/pool.js';
import { SECTOR } from './header.js';
import type { SparseExtent } from './sparse.js';

export type Part =
  | { kind: 'sparse'; start: number; length: number; ext: SparseExtent; file: string; type: string }
  | { kind: 'flat'; start: number; length: number; src: ByteSource; fileOffset: number; file: string; type: string }
  | { kind: 'zero'; start: number; length: number; file: string; type: string };

export interface VmdkMeta {
  cid: number;
  parentCid: number;
  createType: string;
  parentHint?: string;
  /** True for a single KDMV file (qemu shows format "" for its extent). */
  monolithic: boolean;
}

/** Grains looked up per step; bounds the GTE scratch array. */
const GRAINS_PER_STEP = 8192;
/** Inflate inline below this many grains; above, batch on the worker pool. */
const INLINE_INFLATE_MAX = 2;
const INFLATE_BATCH = 32;
/** Read a span of compressed grains in one go when they lie at most this far apart. */
const SPAN_MAX = 16 * 1024 * 1024;

interface DataRun { buf: number; host: number; len: number }
interface UnallocRun { buf: number; guest: number; len: number }
interface CGrain { grain: number; host: number; buf: number; inGrain: number; len: number }

export class VmdkDevice implements BlockDevice {
  readonly format = 'vmdk';
  readonly virtualSize: number;
  private lastGrain = new WeakMap<SparseExtent, { grain: number; data: Uint8Array }>();

  constructor(
    readonly name: string,
    private parts: Part[],
    private meta: VmdkMeta,
    public backing: BlockDevice | null,
    private sources: ByteSource[],
  ) {
    this.virtualSize = parts.reduce((a, p) => a + p.length, 0);
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    const end = offset + buf.length;
    if (offset < 0 || end > this.virtualSize) throw new RangeError(`read [${offset}, ${end}) outside the ${this.virtualSize}-byte disk`);
    for (const p of this.parts) {
      const s = Math.max(offset, p.start);
      const e = Math.min(end, p.start + p.length);
      if (s >= e) continue;
      const sub = buf.subarray(s - offset, e - offset);
      if (p.kind === 'zero') sub.fill(0);
      else if (p.kind === 'flat') await this.readFlat(p, sub, s - p.start);
      else await this.readSparse(p, sub, s - p.start);
    }
  }

  private async readFlat(p: Extract<Part, { kind: 'flat' }>, buf: Uint8Array, off: number): Promise<void> {
    const n = await p.src.read(buf, p.fileOffset + off);
    // Like qemu, a flat file shorter than its extent reads as zeros past its end.
    if (n < buf.length) buf.fill(0, n);
  }

  private async readUnallocated(buf: Uint8Array, guest: number): Promise<void> {
    const b = this.backing;
    if (!b) { buf.fill(0); return; }
    const n = Math.max(0, Math.min(buf.length, b.virtualSize - guest));
    if (n > 0) await b.read(buf.subarray(0, n), guest);
    if (n < buf.length) buf.fill(0, n);
  }

  private async readSparse(p: Extract<Part, { kind: 'sparse' }>, buf: Uint8Array, off: number): Promise<void> {
    const ext = p.ext;
    const G = ext.grainBytes;
    const end = off + buf.length;
    const gtes = new Uint32Array(Math.min(GRAINS_PER_STEP, Math.ceil(buf.length / G) + 1));
    let pos = off;
    while (pos < end) {
      const g0 = Math.floor(pos / G);
      const stepEnd = Math.min(end, (g0 + gtes.length) * G);
      const g1 = Math.ceil(stepEnd / G);
      await ext.grainEntries(g0, g1 - g0, gtes);
      const data: DataRun[] = [];
      const unalloc: UnallocRun[] = [];
      const comp: CGrain[] = [];
      for (let g = g0; g < g1; g++) {
        const gs = Math.max(pos, g * G);
        const ge = Math.min(stepEnd, (g + 1) * G);
        const b = gs - off;
        const n = ge - gs;
        const gte = gtes[g - g0]!;
        const kind = ext.kindOf(gte);
        if (kind === 'unallocated') {
          const last = unalloc[unalloc.length - 1];
          if (last && last.buf + last.len === b) last.len += n;
          else unalloc.push({ buf: b, guest: p.start + gs, len: n });
        } else if (kind === 'zero') {
          buf.fill(0, b, b + n);
        } else if (ext.compressed) {
          comp.push({ grain: g, host: gte * SECTOR, buf: b, inGrain: gs - g * G, len: n });
        } else {
          const host = gte * SECTOR + (gs - g * G);
          const last = data[data.length - 1];
          if (last && last.buf + last.len === b && last.host + last.len === host) last.len += n;
          else data.push({ buf: b, host, len: n });
        }
      }
      await Promise.all([
        limited(data, 8, async (r) => {
          if (r.host + r.len > ext.src.size) {
            throw new CorruptImage(`VMDK grain at host offset ${r.host} lies past the end of the file`, { file: ext.name, offset: r.host });
          }
          await ext.src.read(buf.subarray(r.buf, r.buf + r.len), r.host);
        }),
        limited(unalloc, 4, (r) => this.readUnallocated(buf.subarray(r.buf, r.buf + r.len), r.guest)),
        comp.length > 0 ? this.readCompressed(ext, comp, buf, p.length) : undefined,
      ]);
      pos = stepEnd;
    }
  }

  private async readCompressed(ext: SparseExtent, list: CGrain[], buf: Uint8Array, extentLength: number): Promise<void> {
    const G = ext.grainBytes;
    const cached = this.lastGrain.get(ext);
    if (cached) {
      list = list.filter((c) => {
        if (c.grain !== cached.grain) return true;
        buf.set(cached.data.subarray(c.inGrain, c.inGrain + c.len), c.buf);
        return false;
      });
      if (list.length === 0) return;
    }
    // Deflate can grow incompressible data slightly; anything much larger is corrupt.
    const maxPayload = G + (G >> 6) + 1024;
    const payloads: Uint8Array[] = new Array(list.length);
    const order = list.map((_, i) => i).sort((a, b) => list[a]!.host - list[b]!.host);
    let i = 0;
    while (i < order.length) {
      let j = i + 1;
      const h0 = list[order[i]!]!.host;
      while (j < order.length && list[order[j]!]!.host - list[order[j - 1]!]!.host <= maxPayload + SECTOR && list[order[j]!]!.host - h0 < SPAN_MAX) j++;
      const hLast = list[order[j - 1]!]!.host;
      const spanEnd = Math.min(ext.src.size, hLast + maxPayload + 12);
      if (h0 >= ext.src.size) throw new CorruptImage(`VMDK compressed grain at host offset ${h0} lies past the end of the file`, { file: ext.name, offset: h0 });
      const span = new Uint8Array(spanEnd - h0);
      await ext.src.read(span, h0);
      const dv = new DataView(span.buffer);
      for (let k = i; k < j; k++) {
        const c = list[order[k]!]!;
        const rel = c.host - h0;
        let start = rel;
        let size: number;
        if (ext.markers) {
          if (rel + 12 > span.length) throw new CorruptImage(`VMDK grain marker at ${c.host} is truncated`, { file: ext.name, offset: c.host });
          size = dv.getUint32(rel + 8, true);
          start = rel + 12;
          if (size === 0 || size > maxPayload) throw new CorruptImage(`VMDK grain marker at ${c.host} gives a compressed size of ${size} bytes`, { file: ext.name, offset: c.host });
        } else {
          size = Math.min(maxPayload, span.length - rel);
        }
        if (start + size > span.length) throw new CorruptImage(`VMDK compressed grain at ${c.host} runs past the end of the file`, { file: ext.name, offset: c.host });
        payloads[order[k]!] = span.subarray(start, start + size);
      }
      i = j;
    }
    let outs: Uint8Array[];
    try {
      if (list.length <= INLINE_INFLATE_MAX) {
        outs = payloads.map((p) => zlib.inflateSync(p, { maxOutputLength: G }));
      } else {
        const jobs: Promise<Uint8Array[]>[] = [];
        for (let s = 0; s < payloads.length; s += INFLATE_BATCH) {
          // One compact buffer per batch: posting views of a shared span would copy all of it.
          const chunk = payloads.slice(s, s + INFLATE_BATCH);
          const total = chunk.reduce((a, p) => a + p.length, 0);
          const packed = new Uint8Array(total);
          let o = 0;
          const views = chunk.map((p) => { packed.set(p, o); const v = packed.subarray(o, o + p.length); o += p.length; return v; });
          jobs.push(compressPool().run({ op: 'decompress', codec: 'deflate', chunks: views, outputSizes: views.map(() => G) }));
        }
        outs = (await Promise.all(jobs)).flat();
      }
    } catch (err) {
      // Data errors come back as plain messages; worker start-up failures carry a Node code.
      const code = (err as NodeJS.ErrnoException).code;
      if (err instanceof ImgportError || (code?.startsWith('ERR_') && code !== 'ERR_BUFFER_TOO_LARGE')) throw err;
      throw new CorruptImage(`VMDK compressed grain cannot be inflated: ${(err as Error).message}`, { file: ext.name, cause: err });
    }
    for (let k = 0; k < list.length; k++) {
      const c = list[k]!;
      const out = outs[k]!;
      // The last grain of an odd-sized disk may carry fewer bytes than a full grain.
      const need = Math.min(G, extentLength - c.grain * G);
      if (out.length < Math.min(need, c.inGrain + c.len)) {
        throw new CorruptImage(`VMDK compressed grain at ${c.host} inflates to ${out.length} bytes, expected ${need}`, { file: ext.name, offset: c.host });
      }
      buf.set(out.subarray(c.inGrain, c.inGrain + c.len), c.buf);
    }
    const last = list[list.length - 1]!;
    this.lastGrain.set(ext, { grain: last.grain, data: outs[list.length - 1]! });
  }

  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    const end = Math.min(this.virtualSize, offset + length);
    let pending: Extent | null = null;
    let pendingFile = -1;
    const out: Extent[] = [];
    const emit = (e: Extent, fileIdx: number) => {
      if (pending && pending.kind === e.kind && pending.offset + pending.length === e.offset
        && (pending.compressed ?? false) === (e.compressed ?? false)
        && (e.kind !== 'data' || (fileIdx === pendingFile && (pending.hostOffset === undefined) === (e.hostOffset === undefined)
          && (e.hostOffset === undefined || pending.hostOffset! + pending.length === e.hostOffset)))) {
        pending.length += e.length;
        return;
      }
      if (pending) out.push(pending);
      pending = e;
      pendingFile = fileIdx;
    };
    for (let pi = 0; pi < this.parts.length; pi++) {
      const p = this.parts[pi]!;
      const s = Math.max(offset, p.start);
      const e = Math.min(end, p.start + p.length);
      if (s >= e) continue;
      if (p.kind === 'zero') emit({ offset: s, length: e - s, kind: 'zero' }, pi);
      else if (p.kind === 'flat') {
        const host = p.fileOffset + (s - p.start);
        const inFile = Math.max(0, Math.min(e - s, p.src.size - host));
        if (inFile > 0) emit({ offset: s, length: inFile, kind: 'data', hostOffset: host }, pi);
        if (inFile < e - s) emit({ offset: s + inFile, length: e - s - inFile, kind: 'zero' }, pi);
      } else {
        const ext = p.ext;
        const G = ext.grainBytes;
        const gtes = new Uint32Array(GRAINS_PER_STEP);
        let pos = s - p.start;
        const stop = e - p.start;
        while (pos < stop) {
          const g0 = Math.floor(pos / G);
          const stepEnd = Math.min(stop, (g0 + GRAINS_PER_STEP) * G);
          const g1 = Math.ceil(stepEnd / G);
          await ext.grainEntries(g0, g1 - g0, gtes);
          for (let g = g0; g < g1; g++) {
            const gs = Math.max(pos, g * G);
            const ge = Math.min(stepEnd, (g + 1) * G);
            const gte = gtes[g - g0]!;
            const kind = ext.kindOf(gte);
            const x: Extent = { offset: p.start + gs, length: ge - gs, kind };
            if (kind === 'data') {
              if (ext.compressed) x.compressed = true;
              else x.hostOffset = gte * SECTOR + (gs - g * G);
            }
            emit(x, pi);
          }
          pos = stepEnd;
          while (out.length > 0) yield out.shift()!;
        }
      }
      while (out.length > 0) yield out.shift()!;
    }
    if (pending) yield pending;
  }

  /** Like qemu's vmdk check: every allocated grain must start inside its file; tables must be readable. */
  async check(opts: { repair?: 'leaks' | 'all' } = {}): Promise<CheckReport> {
    if (opts.repair) throw new UnsupportedFeature('vmdk images cannot be repaired', { file: this.name });
    const messages: string[] = [];
    let corruptions = 0;
    let checkErrors = 0;
    for (const p of this.parts) {
      if (p.kind !== 'sparse') continue;
      const ext = p.ext;
      const G = ext.grainBytes;
      const grains = Math.ceil(p.length / G);
      const gtes = new Uint32Array(GRAINS_PER_STEP);
      for (let g0 = 0; g0 < grains; g0 += GRAINS_PER_STEP) {
        const n = Math.min(GRAINS_PER_STEP, grains - g0);
        try {
          await ext.grainEntries(g0, n, gtes);
        } catch (err) {
          checkErrors++;
          messages.push(`ERROR: ${(err as Error).message}`);
          continue;
        }
        for (let i = 0; i < n; i++) {
          const gte = gtes[i]!;
          if (ext.kindOf(gte) !== 'data') continue;
          if (gte * SECTOR >= ext.src.size) {
            corruptions++;
            if (messages.length < 100) messages.push(`ERROR: cluster offset for sector ${(p.start + (g0 + i) * G) / SECTOR} points after EOF (${p.file})`);
          }
        }
      }
    }
    return {
      // qemu reports no cluster statistics for vmdk; neither do we.
      filename: this.name, format: 'vmdk', checkErrors, corruptions, leaks: 0, messages,
    };
  }

  describe(): DeviceInfo {
    const m = this.meta;
    const firstSparse = this.parts.find((p) => p.kind === 'sparse') as Extract<Part, { kind: 'sparse' }> | undefined;
    const extents = this.parts.map((p) => {
      const e: Record<string, unknown> = {};
      if (p.kind === 'sparse' && p.ext.compressed) e.compressed = true;
      e['virtual-size'] = p.length;
      e.filename = p.file;
      if (p.kind === 'sparse') e['cluster-size'] = p.ext.grainBytes;
      e.format = m.monolithic ? '' : p.type;
      return e;
    });
    const info: DeviceInfo = {
      formatSpecific: {
        type: 'vmdk',
        data: { cid: m.cid, 'parent-cid': m.parentCid, 'create-type': m.createType, extents },
      },
    };
    if (firstSparse) info.clusterSize = firstSparse.ext.grainBytes;
    if (m.parentHint !== undefined) info.backingFilename = m.parentHint;
    return info;
  }

  async close(): Promise<void> {
    const errs: unknown[] = [];
    for (const s of this.sources) await s.close().catch((e) => errs.push(e));
    this.sources = [];
    if (this.backing) await this.backing.close().catch((e) => errs.push(e));
    this.backing = null;
    if (errs.length > 0) throw errs[0];
  }
}

/** Runs fn over items with at most `n` in flight. */
export async function limited<T>(items: T[], n: number, fn: (x: T) => Promise<void>): Promise<void> {
  if (items.length === 0) return;
  if (items.length === 1) return fn(items[0]!);
  let next = 0;
  const worker = async () => { while (next < items.length) await fn(items[next++]!); };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}
