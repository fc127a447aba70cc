// Opening VHD images: fixed (raw data + footer), dynamic (BAT of sparse blocks) and
// differencing (dynamic + parent, sector bitmaps say which sectors this layer holds).

import type { BlockDevice, DeviceInfo, Extent, OpenContext } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { TableDevice, UNALLOCATED, readExact, type PartialBlock } from '../../block/bat.js';
import { CorruptImage, ImgportError, InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { sameBytes } from '../../block/uuid.js';
import { writeZeros } from '../../block/blockstream.js';
import {
  DISK_DIFFERENCING, DISK_DYNAMIC, DISK_FIXED, DYN_HEADER_SIZE, FOOTER_SIZE, VHD_MAX_SIZE,
  type DynamicHeader, type Footer, isFooter, parseDynamicHeader, parseFooter, vhdChecksum, vhdVirtualSize,
} from './footer.js';

/** Caps checked before allocating: BAT entries for a 2040 GiB disk at the smallest sane block size. */
const MAX_BAT_ENTRIES = 1 << 24;
const MAX_LOCATOR_BYTES = 64 * 1024;

async function readFooter(src: ByteSource): Promise<{ footer: Footer; raw: Uint8Array; at: number; tailOk: boolean }> {
  if (src.size < FOOTER_SIZE) throw new CorruptImage(`file of ${src.size} bytes is too small for a VHD footer`, { file: src.name });
  // Like qemu, the copy at offset 0 (dynamic and differencing disks) comes first, then the
  // footer at the end (fixed disks have only that one; some old tools wrote 511 bytes).
  const head = await readExact(src, new Uint8Array(FOOTER_SIZE), 0, 'VHD footer copy');
  const tail = await readExact(src, new Uint8Array(FOOTER_SIZE), src.size - FOOTER_SIZE, 'VHD footer');
  const t511 = new Uint8Array(FOOTER_SIZE);
  await src.read(t511.subarray(0, 511), src.size - 511);
  const valid = (b: Uint8Array) => isFooter(b) && vhdChecksum(b, 64) === new DataView(b.buffer, b.byteOffset, FOOTER_SIZE).getUint32(64);
  const tailOk = valid(tail);
  const candidates: Array<[Uint8Array, number]> = [[head, 0], [tail, src.size - FOOTER_SIZE], [t511, src.size - 511]];
  for (const [raw, at] of candidates) {
    if (valid(raw)) return { footer: parseFooter(raw), raw, at, tailOk };
  }
  const found = candidates.find(([raw]) => isFooter(raw));
  if (found) {
    const f = parseFooter(found[0]);
    throw new CorruptImage(`VHD footer checksum mismatch (stored 0x${f.checksum.toString(16)}, computed 0x${vhdChecksum(found[0], 64).toString(16)})`, { file: src.name, offset: found[1] + 64 });
  }
  throw new CorruptImage('no VHD footer ("conectix" cookie) at the end or start of the file', { file: src.name, offset: src.size - FOOTER_SIZE });
}

export async function openVpc(src: ByteSource, ctx: OpenContext): Promise<BlockDevice> {
  const footerInfo = await readFooter(src);
  const { footer } = footerInfo;
  const { size } = vhdVirtualSize(footer);
  if (size > VHD_MAX_SIZE * 2 || size > Number.MAX_SAFE_INTEGER) {
    throw new CorruptImage(`disk size ${size} is beyond the VHD limit`, { file: src.name, offset: src.size - FOOTER_SIZE + 48 });
  }
  if (footer.diskType === DISK_FIXED) {
    if (size > src.size - FOOTER_SIZE) {
      throw new CorruptImage(`fixed VHD claims ${size} bytes but holds only ${src.size - FOOTER_SIZE}`, { file: src.name, offset: src.size - FOOTER_SIZE + 48 });
    }
    return new FixedVhd(src, size, footer);
  }
  if (footer.diskType !== DISK_DYNAMIC && footer.diskType !== DISK_DIFFERENCING) {
    throw new UnsupportedFeature(`unknown VHD disk type ${footer.diskType}`, { file: src.name, offset: src.size - FOOTER_SIZE + 60 });
  }
  const hdrAt = footer.dataOffset;
  if (hdrAt < 0 || hdrAt % 512 !== 0 || hdrAt + DYN_HEADER_SIZE > src.size) {
    throw new CorruptImage(`dynamic header offset ${hdrAt} is outside the file`, { file: src.name, offset: src.size - FOOTER_SIZE + 16 });
  }
  const rawHdr = await readExact(src, new Uint8Array(DYN_HEADER_SIZE), hdrAt, 'VHD dynamic header');
  if (Buffer.from(rawHdr.subarray(0, 8)).toString('latin1') !== 'cxsparse') {
    throw new CorruptImage('dynamic header has no "cxsparse" cookie', { file: src.name, offset: hdrAt });
  }
  const hdr = parseDynamicHeader(rawHdr);
  const hsum = vhdChecksum(rawHdr, 36);
  if (hsum !== hdr.checksum) throw new CorruptImage(`dynamic header checksum mismatch (stored 0x${hdr.checksum.toString(16)}, computed 0x${hsum.toString(16)})`, { file: src.name, offset: hdrAt + 36 });
  const bs = hdr.blockSize;
  if (bs < 512 || bs > 256 * 1024 * 1024 || (bs & (bs - 1)) !== 0) {
    throw new CorruptImage(`block size ${bs} is not a power of two between 512 B and 256 MiB`, { file: src.name, offset: hdrAt + 32 });
  }
  const needed = Math.ceil(size / bs);
  if (hdr.maxTableEntries < needed) {
    throw new CorruptImage(`BAT has ${hdr.maxTableEntries} entries but the ${size}-byte disk needs ${needed}`, { file: src.name, offset: hdrAt + 28 });
  }
  if (hdr.maxTableEntries > MAX_BAT_ENTRIES) throw new UnsupportedFeature(`BAT of ${hdr.maxTableEntries} entries exceeds the limit of ${MAX_BAT_ENTRIES}`, { file: src.name, offset: hdrAt + 28 });
  // Only the entries that cover the disk are read; the rest are never consulted.
  if (hdr.tableOffset < 0 || hdr.tableOffset + needed * 4 > src.size) {
    throw new CorruptImage(`BAT (${needed} entries at ${hdr.tableOffset}) lies outside the ${src.size}-byte file`, { file: src.name, offset: hdrAt + 16 });
  }
  const batRaw = await readExact(src, new Uint8Array(needed * 4), hdr.tableOffset, 'VHD BAT');
  const bitmapSize = Math.ceil(bs / 512 / 8 / 512) * 512;
  const dv = new DataView(batRaw.buffer);
  const host = new Float64Array(needed);
  for (let i = 0; i < needed; i++) {
    const e = dv.getUint32(i * 4);
    if (e === 0xffffffff) { host[i] = UNALLOCATED; continue; }
    const at = e * 512;
    if (at + bitmapSize + bs > src.size) {
      throw new CorruptImage(`BAT entry ${i} points to sector ${e}, past the end of the file`, { file: src.name, offset: hdr.tableOffset + i * 4 });
    }
    host[i] = at + bitmapSize;
  }
  const dev = new DynamicVhd(src, size, footer, hdr, host, bitmapSize);
  if (footerInfo.tailOk) {
    dev.footerAt = src.size - FOOTER_SIZE;
    dev.footerRaw = await readExact(src, new Uint8Array(FOOTER_SIZE), dev.footerAt, 'VHD footer');
  }
  if (footer.diskType === DISK_DIFFERENCING) {
    dev.backingFilename = await parentName(src, hdr);
    if (ctx.openBacking) {
      dev.backing = await openParent(src, hdr, ctx);
    }
  }
  return dev;
}

/** Parent file names from the locators, best first: relative Windows, Mac OS X URL, absolute Windows, the stored Unicode name. */
async function parentCandidates(src: ByteSource, hdr: DynamicHeader): Promise<string[]> {
  const out: Array<[number, string]> = [];
  for (const l of hdr.locators) {
    const rank = { W2ru: 0, MacX: 1, W2ku: 2 }[l.platformCode];
    if (rank === undefined || l.dataLength === 0) continue;
    if (l.dataLength > MAX_LOCATOR_BYTES || l.dataOffset < 0 || l.dataOffset + l.dataLength > src.size) {
      throw new CorruptImage(`parent locator ${l.platformCode} (${l.dataLength} bytes at ${l.dataOffset}) lies outside the file`, { file: src.name, offset: l.dataOffset });
    }
    const b = await readExact(src, new Uint8Array(l.dataLength), l.dataOffset, `parent locator ${l.platformCode}`);
    let s = l.platformCode === 'MacX' ? Buffer.from(b).toString('utf8') : Buffer.from(b).toString('utf16le');
    s = s.replace(/\0.*$/s, '');
    if (l.platformCode === 'MacX') s = decodeURI(s.replace(/^file:\/\/(localhost)?/, ''));
    else s = s.replace(/\\/g, '/').replace(/^\.\//, '');
    if (s) out.push([rank, s]);
  }
  out.sort((a, b) => a[0] - b[0]);
  const names = out.map((x) => x[1]);
  if (hdr.parentName) names.push(hdr.parentName.replace(/\\/g, '/'));
  // Chains copied off Windows: the absolute paths no longer apply, but the parent usually
  // sits next to the child. The policy still vets it and the unique id must match.
  for (const n of [...names]) names.push(n.slice(n.lastIndexOf('/') + 1));
  return [...new Set(names.filter((n) => n.length > 0))];
}

async function parentName(src: ByteSource, hdr: DynamicHeader): Promise<string> {
  const c = await parentCandidates(src, hdr);
  if (c.length === 0) throw new CorruptImage('differencing VHD names no parent', { file: src.name });
  return c[0]!;
}

async function openParent(src: ByteSource, hdr: DynamicHeader, ctx: OpenContext): Promise<BlockDevice> {
  const names = await parentCandidates(src, hdr);
  let first: unknown;
  for (const n of names) {
    let parent: BlockDevice;
    try {
      parent = await ctx.openReference(n, src.name, undefined, 'parent');
    } catch (err) {
      // Try the next locator when this one is missing or refused (every one goes through the policy).
      if (err instanceof ImgportError && (err.code === 'NOT_FOUND' || err.code === 'UNSAFE_IMAGE')) { first ??= err; continue; }
      throw err;
    }
    const pid = (parent as Partial<DynamicVhd>).uniqueId;
    if (pid && !sameBytes(pid, hdr.parentUniqueId)) {
      await parent.close().catch(() => {});
      throw new CorruptImage(`parent '${n}' has a different unique id than this differencing disk expects`, { file: src.name });
    }
    return parent;
  }
  throw first ?? new CorruptImage('no usable parent locator', { file: src.name });
}

class FixedVhd implements BlockDevice {
  readonly format = 'vpc';
  readonly name: string;
  readonly backing = null;
  readonly uniqueId: Uint8Array;
  constructor(private src: ByteSource, readonly virtualSize: number, footer: Footer) {
    this.name = src.name;
    this.uniqueId = footer.uniqueId;
  }
  async read(buf: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + buf.length > this.virtualSize) throw new InvalidArgument(`read at ${offset}+${buf.length} is outside the disk`, { file: this.name });
    await readExact(this.src, buf, offset, 'fixed VHD data');
  }
  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    // All data, like qemu-img map reports fixed VHDs (the copy loop still skips zero runs).
    const end = Math.min(this.virtualSize, offset + length);
    if (end > offset) yield { offset, length: end - offset, kind: 'data', hostOffset: offset };
  }
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (!this.src.write) throw new UnsupportedFeature('vpc image opened read-only', { file: this.name });
    if (offset < 0 || offset + buf.length > this.virtualSize) throw new InvalidArgument(`write at ${offset}+${buf.length} is outside the disk`, { file: this.name });
    await this.src.write(buf, offset);
  }
  async flush(): Promise<void> { await this.src.sync?.(); }
  describe(): DeviceInfo { return {}; }
  async close(): Promise<void> { await this.src.close(); }
}

class DynamicVhd extends TableDevice {
  readonly format = 'vpc';
  backingFilename?: string;
  readonly uniqueId: Uint8Array;
  private readonly differencing: boolean;
  constructor(src: ByteSource, size: number, footer: Footer, private hdr: DynamicHeader, private host: Float64Array, private bitmapSize: number) {
    super(src, size, hdr.blockSize);
    this.uniqueId = footer.uniqueId;
    this.differencing = footer.diskType === DISK_DIFFERENCING;
  }
  /** Where the trailing footer sits (new blocks go there); -1 when the footer is not at the end. */
  footerAt = -1;
  footerRaw: Uint8Array | null = null;
  protected blockHost(i: number): number { return this.host[i] ?? UNALLOCATED; }
  // New blocks replace the trailing footer, which moves behind them; the BAT entry is
  // written last so a crash leaves at worst an unreferenced block.
  write(buf: Uint8Array, offset: number): Promise<void> { return this.writeBlocks(buf, offset); }
  protected override async allocateBlock(i: number): Promise<number> {
    const src = this.source;
    if (this.footerAt < 0 || !this.footerRaw || !src.write) throw new UnsupportedFeature('cannot grow this VHD (footer not at the end of the file)', { file: this.name });
    const at = Math.ceil(this.footerAt / 512) * 512;
    const bs = this.hdr.blockSize;
    const write = (b: Uint8Array, o: number) => src.write!(b, o);
    await write(new Uint8Array(this.bitmapSize).fill(0xff), at);
    await writeZeros(write, at + this.bitmapSize, bs);
    await write(this.footerRaw, at + this.bitmapSize + bs);
    const e = new Uint8Array(4);
    new DataView(e.buffer).setUint32(0, at / 512);
    await write(e, this.hdr.tableOffset + i * 4);
    this.host[i] = at + this.bitmapSize;
    this.footerAt = at + this.bitmapSize + bs;
    return this.host[i]!;
  }
  // qemu reads whole allocated blocks of dynamic disks and ignores their bitmaps; only
  // differencing disks need them, to know which sectors come from the parent.
  protected override isPartial(i: number): boolean { return this.differencing && (this.host[i] ?? -1) >= 0; }
  protected override async loadPartial(i: number): Promise<PartialBlock> {
    const h = this.host[i]!;
    const bits = await readExact(this.source, new Uint8Array(this.bitmapSize), h - this.bitmapSize, `sector bitmap of block ${i}`);
    return { host: h, bits, msbFirst: true };
  }
  describe(): DeviceInfo {
    const info: DeviceInfo = { clusterSize: this.hdr.blockSize };
    if (this.backingFilename) info.backingFilename = this.backingFilename;
    return info;
  }
}
