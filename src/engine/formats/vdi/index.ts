// VDI: VirtualBox's disk image, header v1.1, static (all blocks allocated) and dynamic
// (blocks allocated on demand through a block map). Little-endian throughout.

import type { BlockDevice, CheckReport, CreateRequest, DeviceInfo, FormatDriver, ImageWriter, OpenContext, ProbeInput } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { TableDevice, UNALLOCATED, ZERO, readExact } from '../../block/bat.js';
import { BlockPlacer, SequentialOut, writeZeros } from '../../block/blockstream.js';
import { isNullUuid, randomUuid } from '../../block/uuid.js';
import { CorruptImage, InvalidArgument, UnsupportedFeature } from '../../errors.js';

const SIGNATURE = 0xbeda107f;
const HEADER_SIZE = 512;
const TYPE_DYNAMIC = 1;
const TYPE_STATIC = 2;
const BLOCK_FREE = 0xffffffff;
const BLOCK_ZERO = 0xfffffffe; // "discarded": reads as zeros
const DEFAULT_BLOCK = 1024 * 1024;
/** 64 TiB of 1 MiB blocks; bigger maps are refused before allocating. */
const MAX_BLOCKS = 1 << 26;
const TEXT = '<<< Oracle VM VirtualBox Disk Image >>>\n';

interface Header {
  version: number;
  headerSize: number;
  imageType: number;
  offsetBmap: number;
  offsetData: number;
  sectorSize: number;
  diskSize: number;
  blockSize: number;
  blockExtra: number;
  blocksInImage: number;
  blocksAllocated: number;
  uuidImage: Uint8Array;
  uuidLink: Uint8Array;
  uuidParent: Uint8Array;
}

function parseHeader(b: Uint8Array): Header {
  const dv = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  return {
    version: dv.getUint32(68, true),
    headerSize: dv.getUint32(72, true),
    imageType: dv.getUint32(76, true),
    offsetBmap: dv.getUint32(340, true),
    offsetData: dv.getUint32(344, true),
    sectorSize: dv.getUint32(360, true),
    diskSize: Number(dv.getBigUint64(368, true)),
    blockSize: dv.getUint32(376, true),
    blockExtra: dv.getUint32(380, true),
    blocksInImage: dv.getUint32(384, true),
    blocksAllocated: dv.getUint32(388, true),
    uuidImage: b.slice(392, 408),
    uuidLink: b.slice(424, 440),
    uuidParent: b.slice(440, 456),
  };
}

function probe(input: ProbeInput): number {
  if (input.head.length < HEADER_SIZE) return 0;
  const dv = new DataView(input.head.buffer, input.head.byteOffset, HEADER_SIZE);
  return dv.getUint32(64, true) === SIGNATURE ? 100 : 0;
}

class VdiDevice extends TableDevice {
  readonly format = 'vdi';
  private nextIndex = 0;
  constructor(src: ByteSource, private hdr: Header, private bmap: Uint32Array) {
    super(src, hdr.diskSize, hdr.blockSize);
    for (const e of bmap) if (e !== BLOCK_FREE && e !== BLOCK_ZERO && e >= this.nextIndex) this.nextIndex = e + 1;
  }
  // A new block goes after the highest one in use; map entry, then the header's count.
  write(buf: Uint8Array, offset: number): Promise<void> { return this.writeBlocks(buf, offset); }
  protected override async allocateBlock(i: number): Promise<number> {
    const src = this.source;
    const write = (b: Uint8Array, o: number) => src.write!(b, o);
    const h = this.hdr;
    const idx = this.nextIndex;
    if (idx >= h.blocksInImage) throw new CorruptImage('no free block index left', { file: this.name });
    const at = h.offsetData + idx * (h.blockSize + h.blockExtra);
    await writeZeros(write, at, h.blockSize + h.blockExtra);
    const e = new Uint8Array(4);
    new DataView(e.buffer).setUint32(0, idx, true);
    await write(e, h.offsetBmap + i * 4);
    this.bmap[i] = idx;
    this.nextIndex++;
    h.blocksAllocated++;
    const c = new Uint8Array(4);
    new DataView(c.buffer).setUint32(0, h.blocksAllocated, true);
    await write(c, 388);
    return at + h.blockExtra;
  }
  protected blockHost(i: number): number {
    const e = this.bmap[i];
    if (e === undefined || e === BLOCK_FREE) return UNALLOCATED;
    if (e === BLOCK_ZERO) return ZERO;
    return this.hdr.offsetData + e * (this.hdr.blockSize + this.hdr.blockExtra) + this.hdr.blockExtra;
  }
  describe(): DeviceInfo {
    return { clusterSize: this.hdr.blockSize };
  }
  async check(): Promise<CheckReport> {
    // Same rules as qemu-img check: entries inside the image, none used twice, allocated count right.
    const seen = new Set<number>();
    const messages: string[] = [];
    let corruptions = 0;
    let allocated = 0;
    this.bmap.forEach((e, i) => {
      if (e === BLOCK_FREE || e === BLOCK_ZERO) return;
      allocated++;
      if (e >= this.hdr.blocksInImage) { corruptions++; messages.push(`block index ${i} points to block ${e}, beyond ${this.hdr.blocksInImage}`); }
      else if (seen.has(e)) { corruptions++; messages.push(`block index ${i} shares block ${e} with another`); }
      seen.add(e);
    });
    if (allocated !== this.hdr.blocksAllocated) { corruptions++; messages.push(`allocated blocks mismatch: header says ${this.hdr.blocksAllocated}, map has ${allocated}`); }
    return { filename: this.name, format: 'vdi', checkErrors: 0, corruptions, leaks: 0, totalClusters: this.hdr.blocksInImage, allocatedClusters: allocated, messages };
  }
}

async function openVdi(src: ByteSource, _ctx: OpenContext): Promise<BlockDevice> {
  const f = src.name;
  const raw = await readExact(src, new Uint8Array(HEADER_SIZE), 0, 'VDI header');
  const dv = new DataView(raw.buffer);
  if (dv.getUint32(64, true) !== SIGNATURE) throw new CorruptImage('no VDI signature', { file: f, offset: 64 });
  const h = parseHeader(raw);
  if (h.version >>> 16 !== 1) throw new UnsupportedFeature(`VDI header version ${h.version >>> 16}.${h.version & 0xffff}`, { file: f, offset: 68 });
  if (h.imageType !== TYPE_DYNAMIC && h.imageType !== TYPE_STATIC) {
    throw new UnsupportedFeature(`VDI image type ${h.imageType} (undo/differencing) is not supported`, { file: f, offset: 76 });
  }
  if (!isNullUuid(h.uuidLink) || !isNullUuid(h.uuidParent)) throw new UnsupportedFeature('differencing VDI images are not supported', { file: f, offset: 424 });
  if (h.sectorSize !== 512) throw new UnsupportedFeature(`sector size ${h.sectorSize}`, { file: f, offset: 360 });
  const bs = h.blockSize;
  if (bs < 512 || bs > 256 << 20 || (bs & (bs - 1)) !== 0) throw new CorruptImage(`block size ${bs} is not a power of two between 512 B and 256 MiB`, { file: f, offset: 376 });
  if (h.blockExtra % 512 !== 0 || h.blockExtra > bs) throw new CorruptImage(`block extra data size ${h.blockExtra} is invalid`, { file: f, offset: 380 });
  if (h.blocksInImage > MAX_BLOCKS) throw new UnsupportedFeature(`${h.blocksInImage} blocks exceed the limit of ${MAX_BLOCKS}`, { file: f, offset: 384 });
  if (!Number.isSafeInteger(h.diskSize) || h.diskSize > h.blocksInImage * bs) {
    throw new CorruptImage(`disk size ${h.diskSize} is larger than ${h.blocksInImage} blocks of ${bs} bytes`, { file: f, offset: 368 });
  }
  if (h.offsetBmap < HEADER_SIZE - 112 || h.offsetBmap + h.blocksInImage * 4 > src.size) {
    throw new CorruptImage(`block map (${h.blocksInImage} entries at ${h.offsetBmap}) lies outside the ${src.size}-byte file`, { file: f, offset: 340 });
  }
  if (h.offsetData < h.offsetBmap + h.blocksInImage * 4 && h.blocksInImage > 0) {
    throw new CorruptImage(`data offset ${h.offsetData} overlaps the block map`, { file: f, offset: 344 });
  }
  const mapRaw = await readExact(src, new Uint8Array(h.blocksInImage * 4), h.offsetBmap, 'VDI block map');
  const bmap = new Uint32Array(h.blocksInImage);
  const mv = new DataView(mapRaw.buffer);
  const stride = bs + h.blockExtra;
  for (let i = 0; i < h.blocksInImage; i++) {
    const e = mv.getUint32(i * 4, true);
    bmap[i] = e;
    if (e === BLOCK_FREE || e === BLOCK_ZERO) continue;
    if (e >= h.blocksInImage || h.offsetData + (e + 1) * stride > src.size) {
      throw new CorruptImage(`block map entry ${i} points to block ${e}, outside the file`, { file: f, offset: h.offsetBmap + i * 4 });
    }
  }
  return new VdiDevice(src, h, bmap);
}

function boolOpt(v: string | undefined): boolean {
  if (v === undefined) return false;
  if (/^(on|true|yes|1)$/i.test(v)) return true;
  if (/^(off|false|no|0)$/i.test(v)) return false;
  throw new InvalidArgument(`option static must be on or off, not '${v}'`);
}

function layout(virtualSize: number) {
  const size = Math.ceil(virtualSize / 512) * 512;
  const blocks = Math.ceil(size / DEFAULT_BLOCK);
  if (blocks > MAX_BLOCKS) throw new InvalidArgument(`VDI images are limited to ${MAX_BLOCKS} blocks of 1 MiB`);
  const offsetBmap = HEADER_SIZE;
  // Data starts on a 1 MiB boundary, as VirtualBox lays images out.
  const offsetData = Math.ceil((offsetBmap + blocks * 4) / DEFAULT_BLOCK) * DEFAULT_BLOCK;
  return { size, blocks, offsetBmap, offsetData };
}

function buildHeader(l: ReturnType<typeof layout>, type: number, allocated: number): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  const dv = new DataView(b.buffer);
  b.set(Buffer.from(TEXT, 'latin1'), 0);
  dv.setUint32(64, SIGNATURE, true);
  dv.setUint32(68, 0x00010001, true);
  dv.setUint32(72, 400, true);
  dv.setUint32(76, type, true);
  dv.setUint32(340, l.offsetBmap, true);
  dv.setUint32(344, l.offsetData, true);
  dv.setUint32(360, 512, true);
  dv.setBigUint64(368, BigInt(l.size), true);
  dv.setUint32(376, DEFAULT_BLOCK, true);
  dv.setUint32(384, l.blocks, true);
  dv.setUint32(388, allocated, true);
  b.set(randomUuid(), 392); // image
  b.set(randomUuid(), 408); // last modification
  return b;
}

async function createVdi(req: CreateRequest): Promise<ImageWriter> {
  const { sink } = req;
  if (req.backingFile) throw new UnsupportedFeature('VDI images cannot have a backing file', { file: sink.name });
  for (const k of Object.keys(req.options)) if (k !== 'static') throw new InvalidArgument(`unknown vdi option '${k}'`, { file: sink.name });
  const isStatic = boolOpt(req.options.static);
  const l = layout(req.virtualSize);
  const bmap = new Uint8Array(l.blocks * 4);
  const mv = new DataView(bmap.buffer);
  let allocated = 0;
  let done = false;
  const finishWith = async (type: number, end: number) => {
    if (done) return;
    done = true;
    await sink.write(bmap, l.offsetBmap);
    await sink.truncate?.(end);
    await sink.write(buildHeader(l, type, allocated), 0);
  };
  const abort = async () => { done = true; await sink.truncate?.(0).catch(() => {}); };

  if (isStatic) {
    for (let i = 0; i < l.blocks; i++) mv.setUint32(i * 4, i, true);
    allocated = l.blocks;
    if (!sink.seekable) {
      // Static images know their whole layout up front: header, map, then the data in order.
      const seq = new SequentialOut((b, o) => sink.write(b, o), sink.name);
      await seq.put(buildHeader(l, TYPE_STATIC, allocated), 0);
      await seq.put(bmap, l.offsetBmap);
      return {
        async writeData(offset, data) {
          if (offset < 0 || offset + data.length > l.size) throw new InvalidArgument(`data at ${offset} is past the disk end`, { file: sink.name });
          await seq.put(data, l.offsetData + offset);
        },
        async finish() {
          if (done) return;
          done = true;
          await seq.fillTo(l.offsetData + l.blocks * DEFAULT_BLOCK);
        },
        abort,
      };
    }
    return {
      async writeData(offset, data) {
        if (offset < 0 || offset + data.length > l.size) throw new InvalidArgument(`data at ${offset} is past the disk end`, { file: sink.name });
        await sink.write(data, l.offsetData + offset);
      },
      finish: () => finishWith(TYPE_STATIC, l.offsetData + l.blocks * DEFAULT_BLOCK),
      abort,
    };
  }
  if (!sink.seekable) throw new UnsupportedFeature('dynamic VDI images need a seekable output (static=on can stream)', { file: sink.name });
  new Uint32Array(bmap.buffer).fill(BLOCK_FREE);
  const placer = new BlockPlacer(DEFAULT_BLOCK, l.size, (bi) => {
    mv.setUint32(bi * 4, allocated, true);
    return l.offsetData + allocated++ * DEFAULT_BLOCK;
  }, (buf, off) => sink.write(buf, off), sink.name);
  return {
    writeData: (offset, data) => placer.place(offset, data),
    async finish() { await finishWith(TYPE_DYNAMIC, l.offsetData + allocated * DEFAULT_BLOCK); },
    abort,
  };
}

export const vdiFormat: FormatDriver = {
  name: 'vdi',
  description: 'VirtualBox Disk Image (VDI), static and dynamic',
  probe,
  open: openVdi,
  create: createVdi,
  allocationUnit: () => DEFAULT_BLOCK,
  // static=on streams (its layout is known up front); dynamic needs a seekable file.
  streamable: true,
  createOptions: [{ name: 'static', type: 'bool', default: 'off', help: 'allocate every block up front (static image)' }],
  measure(virtualSize, allocatedBytes, options) {
    const l = layout(virtualSize);
    const full = l.offsetData + l.blocks * DEFAULT_BLOCK;
    if (boolOpt(options.static)) return { required: full, fullyAllocated: full };
    return { required: l.offsetData + Math.min(l.blocks, Math.ceil(allocatedBytes / DEFAULT_BLOCK)) * DEFAULT_BLOCK, fullyAllocated: full };
  },
};


