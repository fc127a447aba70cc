// Opening VHDX images: pick the current header, replay a dirty log in memory, read the
// region table, metadata and BAT (all validated against the file before use), then
// serve reads through the shared block-table device.

import type { BlockDevice, CheckReport, DeviceInfo, OpenContext } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { TableDevice, UNALLOCATED, ZERO, readExact, type PartialBlock } from '../../block/bat.js';
import { crc32c } from '../../block/crc32c.js';
import { guidToString, isNullUuid, sameBytes } from '../../block/uuid.js';
import { CorruptImage, ImgportError, UnsupportedFeature } from '../../errors.js';
import { applyOverlay, replayLog, type Overlay } from './log.js';
import {
  BAT_GUID, FILE_PARAMETERS, HEADER1_AT, HEADER2_AT, HEADER_SIZE, LOGICAL_SECTOR_SIZE, MAX_VIRTUAL_SIZE, METADATA_GUID,
  METADATA_TABLE_SIZE, MiB, PAGE83_DATA, PARENT_LOCATOR, PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT,
  PAYLOAD_UNDEFINED, PAYLOAD_UNMAPPED, PAYLOAD_ZERO, PHYSICAL_SECTOR_SIZE, REGION1_AT, REGION2_AT, REGION_SIZE, SB_PRESENT,
  VHDX_PARENT_LOCATOR_TYPE, VIRTUAL_DISK_SIZE, type Header, batEntries, batEntry, chunkRatio, parseHeader,
} from './structs.js';

const MAX_BAT_BYTES = 512 * MiB;

interface Metadata {
  blockSize: number;
  leaveBlocksAllocated: boolean;
  hasParent: boolean;
  virtualSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  page83?: Uint8Array;
  parent?: Map<string, string>;
}

async function pickHeader(src: ByteSource): Promise<Header> {
  const f = src.name;
  let best: Header | null = null;
  for (const at of [HEADER1_AT, HEADER2_AT]) {
    const b = await readExact(src, new Uint8Array(HEADER_SIZE), at, 'VHDX header');
    if (Buffer.from(b.subarray(0, 4)).toString('latin1') !== 'head') continue;
    if (crc32c(b, 4) !== new DataView(b.buffer).getUint32(4, true)) continue;
    const h = parseHeader(b, at);
    if (!best || h.sequence > best.sequence) best = h;
  }
  if (!best) throw new CorruptImage('neither VHDX header has a valid signature and CRC-32C', { file: f, offset: HEADER1_AT });
  if (best.version !== 1) throw new UnsupportedFeature(`VHDX version ${best.version}`, { file: f, offset: best.at + 66 });
  return best;
}

export async function openVhdx(src: ByteSource, ctx: OpenContext): Promise<BlockDevice> {
  const f = src.name;
  const id = await readExact(src, new Uint8Array(8), 0, 'VHDX file identifier');
  if (Buffer.from(id).toString('latin1') !== 'vhdxfile') throw new CorruptImage('no "vhdxfile" identifier', { file: f, offset: 0 });
  const hdr = await pickHeader(src);
  const overlay: Overlay = isNullUuid(hdr.logGuid) ? new Map() : await replayLog(src, hdr);
  // Metadata reads see the log's pages on top of the file.
  const readMeta = async (len: number, at: number, what: string) => {
    const b = await readExact(src, new Uint8Array(len), at, what);
    applyOverlay(overlay, b, at);
    return b;
  };

  // Region table: the first copy with a good checksum.
  let regions: Map<string, { offset: number; length: number }> | null = null;
  for (const at of [REGION1_AT, REGION2_AT]) {
    const b = await readMeta(REGION_SIZE, at, 'VHDX region table');
    const dv = new DataView(b.buffer);
    if (Buffer.from(b.subarray(0, 4)).toString('latin1') !== 'regi' || crc32c(b, 4) !== dv.getUint32(4, true)) continue;
    const count = dv.getUint32(8, true);
    if (count > 2047) throw new CorruptImage(`region table has ${count} entries (max 2047)`, { file: f, offset: at + 8 });
    regions = new Map();
    for (let i = 0; i < count; i++) {
      const p = 16 + i * 32;
      const guid = b.subarray(p, p + 16);
      const offset = Number(dv.getBigUint64(p + 16, true));
      const length = dv.getUint32(p + 24, true);
      const required = dv.getUint32(p + 28, true) & 1;
      const key = sameBytes(guid, BAT_GUID) ? 'bat' : sameBytes(guid, METADATA_GUID) ? 'metadata' : null;
      if (!key) {
        if (required) throw new UnsupportedFeature(`unknown required region ${guidToString(guid)}`, { file: f, offset: at + p });
        continue;
      }
      if (offset % MiB !== 0 || length % MiB !== 0 || length === 0 || offset < MiB || offset + length > src.size) {
        throw new CorruptImage(`${key} region (${length} bytes at ${offset}) is misaligned or outside the ${src.size}-byte file`, { file: f, offset: at + p + 16 });
      }
      regions.set(key, { offset, length });
    }
    break;
  }
  if (!regions) throw new CorruptImage('neither VHDX region table has a valid signature and CRC-32C', { file: f, offset: REGION1_AT });
  const batRegion = regions.get('bat');
  const metaRegion = regions.get('metadata');
  if (!batRegion || !metaRegion) throw new CorruptImage('region table lacks the BAT or metadata region', { file: f, offset: REGION1_AT });

  // The header area, log, BAT and metadata must not overlap (qemu refuses such files too).
  const areas: Array<[number, number, string]> = [[0, MiB, 'header area'], [batRegion.offset, batRegion.length, 'BAT'], [metaRegion.offset, metaRegion.length, 'metadata']];
  if (hdr.logLength > 0) areas.push([hdr.logOffset, hdr.logLength, 'log']);
  areas.sort((a, b) => a[0] - b[0]);
  for (let k = 1; k < areas.length; k++) {
    if (areas[k - 1]![0] + areas[k - 1]![1] > areas[k]![0]) {
      throw new CorruptImage(`${areas[k]![2]} region at ${areas[k]![0]} overlaps the ${areas[k - 1]![2]}`, { file: f, offset: REGION1_AT });
    }
  }
  const meta = await readMetadata(f, metaRegion, readMeta);
  const bs = meta.blockSize;
  const cr = chunkRatio(meta.logicalSectorSize, bs);
  const nentries = batEntries(meta.virtualSize, bs, meta.logicalSectorSize, meta.hasParent);
  if (nentries * 8 > batRegion.length) {
    throw new CorruptImage(`BAT region of ${batRegion.length} bytes is too small for ${nentries} entries`, { file: f, offset: batRegion.offset });
  }
  if (nentries * 8 > MAX_BAT_BYTES) throw new UnsupportedFeature(`BAT of ${nentries} entries exceeds the limit`, { file: f, offset: batRegion.offset });
  const batRaw = await readMeta(nentries * 8, batRegion.offset, 'VHDX BAT');
  const bdv = new DataView(batRaw.buffer);
  const payload = Math.ceil(meta.virtualSize / bs);
  const host = new Float64Array(payload);
  for (let i = 0; i < payload; i++) {
    const ei = i + Math.floor(i / cr);
    const { state, offset } = batEntry(bdv, ei);
    const where = { file: f, offset: batRegion.offset + ei * 8 };
    switch (state) {
      case PAYLOAD_NOT_PRESENT: host[i] = UNALLOCATED; break;
      case PAYLOAD_UNDEFINED: case PAYLOAD_ZERO: case PAYLOAD_UNMAPPED:
        // Undefined and unmapped blocks have no meaningful data; qemu reads them as zeros too.
        host[i] = ZERO; break;
      case PAYLOAD_FULLY_PRESENT: case PAYLOAD_PARTIALLY_PRESENT: {
        const len = Math.min(bs, meta.virtualSize - i * bs);
        if (offset < MiB || offset + len > src.size) throw new CorruptImage(`BAT entry ${ei} points to ${offset}, outside the data area of the ${src.size}-byte file`, where);
        if (state === PAYLOAD_PARTIALLY_PRESENT && !meta.hasParent) throw new CorruptImage(`BAT entry ${ei} is partially present in an image without a parent`, where);
        // Partially present blocks keep their offset, encoded below ZERO so blockHost() never returns it.
        host[i] = state === PAYLOAD_PARTIALLY_PRESENT ? -(offset + 16) : offset;
        break;
      }
      default: throw new CorruptImage(`BAT entry ${ei} has invalid state ${state}`, where);
    }
  }
  const sb = new Float64Array(meta.hasParent ? Math.ceil(payload / cr) : 0);
  for (let c = 0; c < sb.length; c++) {
    const ei = c * (cr + 1) + cr;
    const { state, offset } = batEntry(bdv, ei);
    sb[c] = -1;
    if (state === SB_PRESENT) {
      if (offset < MiB || offset + MiB > src.size) throw new CorruptImage(`sector bitmap entry ${ei} points outside the file`, { file: f, offset: batRegion.offset + ei * 8 });
      sb[c] = offset;
    }
  }
  const dev = new VhdxDevice(src, meta, host, sb, overlay, hdr);
  dev.areas = areas;
  if (meta.hasParent) {
    const names = parentNames(meta.parent);
    if (names.length === 0) throw new CorruptImage('differencing VHDX has no usable parent path', { file: f });
    dev.backingFilename = names[0]!;
    if (ctx.openBacking) dev.backing = await openParent(f, names, meta.parent!, ctx);
  }
  return dev;
}

async function readMetadata(f: string, region: { offset: number; length: number }, readMeta: (len: number, at: number, what: string) => Promise<Uint8Array>): Promise<Metadata> {
  const t = await readMeta(METADATA_TABLE_SIZE, region.offset, 'VHDX metadata table');
  const dv = new DataView(t.buffer);
  if (Buffer.from(t.subarray(0, 8)).toString('latin1') !== 'metadata') throw new CorruptImage('no "metadata" signature', { file: f, offset: region.offset });
  const count = dv.getUint16(10, true);
  if (count > 2047) throw new CorruptImage(`metadata table has ${count} entries (max 2047)`, { file: f, offset: region.offset + 10 });
  const items = new Map<string, Uint8Array>();
  const known = [FILE_PARAMETERS, VIRTUAL_DISK_SIZE, PAGE83_DATA, LOGICAL_SECTOR_SIZE, PHYSICAL_SECTOR_SIZE, PARENT_LOCATOR];
  for (let i = 0; i < count; i++) {
    const p = 32 + i * 32;
    const guid = t.subarray(p, p + 16);
    const off = dv.getUint32(p + 16, true);
    const len = dv.getUint32(p + 20, true);
    const flags = dv.getUint32(p + 24, true);
    const k = known.find((g) => sameBytes(g, guid));
    if (!k) {
      if (flags & 4) throw new UnsupportedFeature(`unknown required metadata item ${guidToString(guid)}`, { file: f, offset: region.offset + p });
      continue;
    }
    if (len === 0) continue;
    if (off < METADATA_TABLE_SIZE || off + len > region.length || len > MiB) {
      throw new CorruptImage(`metadata item ${guidToString(guid)} (${len} bytes at ${off}) lies outside the metadata region`, { file: f, offset: region.offset + p + 16 });
    }
    items.set(guidToString(k), await readMeta(len, region.offset + off, 'VHDX metadata item'));
  }
  const need = (g: Uint8Array, size: number, what: string) => {
    const v = items.get(guidToString(g));
    if (!v || v.length < size) throw new CorruptImage(`metadata item "${what}" is missing`, { file: f, offset: region.offset });
    return new DataView(v.buffer, v.byteOffset, v.byteLength);
  };
  const fp = need(FILE_PARAMETERS, 8, 'file parameters');
  const blockSize = fp.getUint32(0, true);
  const fpFlags = fp.getUint32(4, true);
  const virtualSize = Number(need(VIRTUAL_DISK_SIZE, 8, 'virtual disk size').getBigUint64(0, true));
  const logicalSectorSize = need(LOGICAL_SECTOR_SIZE, 4, 'logical sector size').getUint32(0, true);
  const physicalSectorSize = need(PHYSICAL_SECTOR_SIZE, 4, 'physical sector size').getUint32(0, true);
  const at = { file: f, offset: region.offset };
  if (blockSize < MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0) throw new CorruptImage(`block size ${blockSize} is not a power of two between 1 and 256 MiB`, at);
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) throw new CorruptImage(`logical sector size ${logicalSectorSize}`, at);
  if (physicalSectorSize !== 512 && physicalSectorSize !== 4096) throw new CorruptImage(`physical sector size ${physicalSectorSize}`, at);
  if (!Number.isSafeInteger(virtualSize) || virtualSize > MAX_VIRTUAL_SIZE || virtualSize % logicalSectorSize !== 0) {
    throw new CorruptImage(`virtual disk size ${virtualSize} is invalid (max 64 TiB, multiple of the sector size)`, at);
  }
  const meta: Metadata = {
    blockSize, virtualSize, logicalSectorSize, physicalSectorSize,
    leaveBlocksAllocated: (fpFlags & 1) !== 0,
    hasParent: (fpFlags & 2) !== 0,
    page83: items.get(guidToString(PAGE83_DATA)),
  };
  if (meta.hasParent) meta.parent = parseParentLocator(f, items.get(guidToString(PARENT_LOCATOR)), region.offset);
  return meta;
}

function parseParentLocator(f: string, b: Uint8Array | undefined, at: number): Map<string, string> {
  if (!b || b.length < 20) throw new CorruptImage('differencing VHDX lacks a parent locator', { file: f, offset: at });
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (!sameBytes(b.subarray(0, 16), VHDX_PARENT_LOCATOR_TYPE)) throw new UnsupportedFeature(`parent locator type ${guidToString(b.subarray(0, 16))}`, { file: f, offset: at });
  const count = dv.getUint16(18, true);
  const out = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const p = 20 + i * 12;
    if (p + 12 > b.length) throw new CorruptImage('parent locator entries run past the item', { file: f, offset: at });
    const ko = dv.getUint32(p, true), vo = dv.getUint32(p + 4, true), kl = dv.getUint16(p + 8, true), vl = dv.getUint16(p + 10, true);
    if (ko + kl > b.length || vo + vl > b.length) throw new CorruptImage('parent locator key or value lies outside the item', { file: f, offset: at });
    out.set(Buffer.from(b.subarray(ko, ko + kl)).toString('utf16le'), Buffer.from(b.subarray(vo, vo + vl)).toString('utf16le'));
  }
  return out;
}

function parentNames(p: Map<string, string> | undefined): string[] {
  if (!p) return [];
  const names: string[] = [];
  for (const k of ['relative_path', 'absolute_win32_path']) {
    const v = p.get(k);
    if (v) names.push(v.replace(/\\/g, '/').replace(/^\.\//, ''));
  }
  // Chains copied off Windows: the parent usually sits next to the child (the policy
  // still vets it and parent_linkage must match).
  for (const n of [...names]) names.push(n.slice(n.lastIndexOf('/') + 1));
  return [...new Set(names.filter((n) => n.length > 0))];
}

async function openParent(f: string, names: string[], loc: Map<string, string>, ctx: OpenContext): Promise<BlockDevice> {
  let first: unknown;
  for (const n of names) {
    let parent: BlockDevice;
    try {
      parent = await ctx.openReference(n, f, undefined, 'parent');
    } catch (err) {
      if (err instanceof ImgportError && (err.code === 'NOT_FOUND' || err.code === 'UNSAFE_IMAGE')) { first ??= err; continue; }
      throw err;
    }
    // parent_linkage names the parent's data write GUID; a mismatch means the parent changed.
    const want = loc.get('parent_linkage')?.replace(/[{}]/g, '').toLowerCase();
    const got = (parent as Partial<VhdxDevice>).dataWriteGuid;
    if (want && got && guidToString(got) !== want) {
      await parent.close().catch(() => {});
      throw new CorruptImage(`parent '${n}' was modified after this differencing disk was made (data write GUID differs)`, { file: f });
    }
    return parent;
  }
  throw first ?? new CorruptImage('no usable parent path', { file: f });
}

export class VhdxDevice extends TableDevice {
  readonly format = 'vhdx';
  backingFilename?: string;
  readonly dataWriteGuid: Uint8Array;
  /** File areas that are not payload (header area, log, BAT, metadata), for check(). */
  areas: Array<[number, number, string]> = [];
  constructor(src: ByteSource, private meta: Metadata, private host: Float64Array, private sb: Float64Array, private overlay: Overlay, hdr: Header) {
    super(src, meta.virtualSize, meta.blockSize, meta.hasParent ? meta.logicalSectorSize : 512);
    this.dataWriteGuid = hdr.dataWriteGuid;
  }
  protected blockHost(i: number): number {
    const h = this.host[i] ?? UNALLOCATED;
    return h < ZERO ? UNALLOCATED : h;
  }
  protected override isPartial(i: number): boolean { return (this.host[i] ?? 0) < ZERO; }
  protected override async loadPartial(i: number): Promise<PartialBlock> {
    const host = -(this.host[i]!) - 16;
    const cr = chunkRatio(this.meta.logicalSectorSize, this.meta.blockSize);
    const sbAt = this.sb[Math.floor(i / cr)] ?? -1;
    const bitsLen = this.meta.blockSize / this.meta.logicalSectorSize / 8;
    if (sbAt < 0) return { host, bits: new Uint8Array(bitsLen), msbFirst: false }; // no bitmap: nothing present here
    const bits = new Uint8Array(bitsLen);
    await this.readFile(bits, sbAt + (i % cr) * bitsLen);
    return { host, bits, msbFirst: false };
  }
  protected override async readFile(buf: Uint8Array, hostOffset: number): Promise<void> {
    await super.readFile(buf, hostOffset);
    applyOverlay(this.overlay, buf, hostOffset);
  }
  /** Like qemu-img check for VHDX: every stored block inside the file, no two blocks (or bitmaps) sharing space. */
  async check(): Promise<CheckReport> {
    const bs = this.meta.blockSize;
    const used: Array<[number, number, string]> = [];
    let allocated = 0;
    this.host.forEach((h, i) => {
      const at = h >= 0 ? h : h < ZERO ? -h - 16 : -1;
      if (at < 0) return;
      allocated++;
      used.push([at, Math.min(bs, this.meta.virtualSize - i * bs), `block ${i}`]);
    });
    this.sb.forEach((at, c) => { if (at >= 0) used.push([at, MiB, `sector bitmap ${c}`]); });
    used.push(...this.areas);
    used.sort((a, b) => a[0] - b[0]);
    const messages: string[] = [];
    for (let k = 1; k < used.length; k++) {
      const [pa, pl, pn] = used[k - 1]!;
      const [a, , n] = used[k]!;
      if (pa + pl > a) messages.push(`${n} at ${a} overlaps ${pn} at ${pa}`);
    }
    if (this.overlay.size > 0) messages.push('the log holds entries not yet written to the file (replayed in memory for reading)');
    return {
      filename: this.name, format: 'vhdx', checkErrors: 0, corruptions: messages.length - (this.overlay.size > 0 ? 1 : 0), leaks: 0,
      imageEndOffset: this.source.size, totalClusters: this.host.length, allocatedClusters: allocated, messages,
    };
  }

  describe(): DeviceInfo {
    const info: DeviceInfo = { clusterSize: this.meta.blockSize };
    if (this.backingFilename) info.backingFilename = this.backingFilename;
    return info;
  }
}
