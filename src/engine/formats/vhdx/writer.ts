// Writing VHDX images. Layout (all regions 1 MiB aligned, like qemu and Hyper-V):
//   0      file identifier        64 KiB  header 1      128 KiB header 2
//   192 KiB region table 1        256 KiB region table 2
//   1 MiB  log (log_size, empty)  then metadata (1 MiB), BAT, payload blocks.
// Dynamic images store only blocks that hold non-zero data; fixed images write every
// block (Hyper-V expects them fully allocated). Headers go last: an aborted image has none.

import type { CreateRequest, ImageWriter } from '../../block/device.js';
import { BlockPlacer, SequentialOut, writeZeros } from '../../block/blockstream.js';
import { crc32c } from '../../block/crc32c.js';
import { randomUuid } from '../../block/uuid.js';
import { InvalidArgument, UnsupportedFeature } from '../../errors.js';
import {
  BAT_GUID, FILE_PARAMETERS, HEADER1_AT, HEADER2_AT, LOGICAL_SECTOR_SIZE, MAX_VIRTUAL_SIZE, METADATA_GUID, METADATA_TABLE_SIZE, MiB,
  PAGE83_DATA, PAYLOAD_FULLY_PRESENT, PHYSICAL_SECTOR_SIZE, REGION1_AT, REGION2_AT, REGION_SIZE, VIRTUAL_DISK_SIZE,
  batEntries, buildHeader, chunkRatio, defaultBlockSize, setBatEntry,
} from './structs.js';

function parseSize(v: string, name: string): number {
  const m = /^(\d+)([kKmMgG]?)[bB]?$/.exec(v.trim());
  if (!m) throw new InvalidArgument(`option ${name}: invalid size '${v}'`);
  const mult = { '': 1, k: 1024, m: MiB, g: 1024 * MiB }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

export function vhdxLayout(virtualSize: number, options: Record<string, string>) {
  for (const k of Object.keys(options)) {
    if (!['subformat', 'block_size', 'log_size', 'block_state_zero'].includes(k)) throw new InvalidArgument(`unknown vhdx option '${k}'`);
  }
  const sub = options.subformat ?? 'dynamic';
  if (sub !== 'dynamic' && sub !== 'fixed') throw new InvalidArgument(`subformat must be dynamic or fixed, not '${sub}'`);
  const size = Math.ceil(virtualSize / 512) * 512;
  if (size > MAX_VIRTUAL_SIZE) throw new InvalidArgument('VHDX images are limited to 64 TiB');
  const bsOpt = options.block_size ? parseSize(options.block_size, 'block_size') : 0;
  const blockSize = bsOpt || defaultBlockSize(size);
  if (blockSize < MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0) {
    throw new InvalidArgument(`block_size must be a power of two between 1 MiB and 256 MiB, not ${blockSize}`);
  }
  const logSize = options.log_size ? parseSize(options.log_size, 'log_size') : MiB;
  if (logSize < MiB || logSize % MiB !== 0 || logSize > 256 * MiB) throw new InvalidArgument('log_size must be a whole number of MiB (1 MiB to 256 MiB)');
  const logOffset = MiB;
  const metaOffset = logOffset + logSize;
  const batOffset = metaOffset + MiB;
  const entries = batEntries(size, blockSize, 512, false);
  const batLength = Math.max(MiB, Math.ceil(entries * 8 / MiB) * MiB);
  const dataOffset = batOffset + batLength;
  const blocks = Math.ceil(size / blockSize);
  return { fixed: sub === 'fixed', size, blockSize, logSize, logOffset, metaOffset, batOffset, batLength, dataOffset, blocks, entries };
}

type Layout = ReturnType<typeof vhdxLayout>;

function buildMetadata(l: Layout): Uint8Array {
  const b = new Uint8Array(MiB);
  const dv = new DataView(b.buffer);
  b.set(Buffer.from('metadata', 'latin1'), 0);
  const items: Array<[Uint8Array, Uint8Array, number]> = [];
  const fp = new Uint8Array(8);
  new DataView(fp.buffer).setUint32(0, l.blockSize, true);
  new DataView(fp.buffer).setUint32(4, l.fixed ? 1 : 0, true); // LeaveBlocksAllocated for fixed disks
  items.push([FILE_PARAMETERS, fp, 4]);
  const vs = new Uint8Array(8);
  new DataView(vs.buffer).setBigUint64(0, BigInt(l.size), true);
  items.push([VIRTUAL_DISK_SIZE, vs, 6]);
  items.push([PAGE83_DATA, randomUuid(), 6]);
  const ls = new Uint8Array(4);
  new DataView(ls.buffer).setUint32(0, 512, true);
  items.push([LOGICAL_SECTOR_SIZE, ls, 6]);
  const ps = new Uint8Array(4);
  new DataView(ps.buffer).setUint32(0, 4096, true);
  items.push([PHYSICAL_SECTOR_SIZE, ps, 6]);
  dv.setUint16(10, items.length, true);
  let off = METADATA_TABLE_SIZE;
  items.forEach(([guid, data, flags], i) => {
    const p = 32 + i * 32;
    b.set(guid, p);
    dv.setUint32(p + 16, off, true);
    dv.setUint32(p + 20, data.length, true);
    dv.setUint32(p + 24, flags, true); // 2 = IsVirtualDisk, 4 = IsRequired
    b.set(data, off);
    off += Math.ceil(data.length / 8) * 8;
  });
  return b;
}

function buildRegionTable(l: Layout): Uint8Array {
  const b = new Uint8Array(REGION_SIZE);
  const dv = new DataView(b.buffer);
  b.set(Buffer.from('regi', 'latin1'), 0);
  dv.setUint32(8, 2, true);
  const put = (i: number, guid: Uint8Array, offset: number, length: number) => {
    const p = 16 + i * 32;
    b.set(guid, p);
    dv.setBigUint64(p + 16, BigInt(offset), true);
    dv.setUint32(p + 24, length, true);
    dv.setUint32(p + 28, 1, true); // required
  };
  put(0, BAT_GUID, l.batOffset, l.batLength);
  put(1, METADATA_GUID, l.metaOffset, MiB);
  dv.setUint32(4, crc32c(b, 4), true);
  return b;
}

function buildIdentifier(): Uint8Array {
  const b = new Uint8Array(64 * 1024);
  b.set(Buffer.from('vhdxfile', 'latin1'), 0);
  b.set(Buffer.from('imgport', 'utf16le'), 8);
  return b;
}

export async function createVhdx(req: CreateRequest): Promise<ImageWriter> {
  const { sink } = req;
  if (req.backingFile) throw new UnsupportedFeature('creating differencing VHDX images is not supported', { file: sink.name });
  if (!(req.virtualSize > 0)) throw new InvalidArgument('VHDX images need a size', { file: sink.name });
  const l = vhdxLayout(req.virtualSize, req.options);
  const bs = l.blockSize;
  const cr = chunkRatio(512, bs);
  const bat = new Uint8Array(l.batLength);
  const bdv = new DataView(bat.buffer);
  const entryOf = (i: number) => i + Math.floor(i / cr);
  let next = l.dataOffset;
  let done = false;
  const write = (buf: Uint8Array, off: number) => sink.write(buf, off);

  // Everything before the data: identifier, headers, region tables, metadata, BAT.
  const metadata = (): Array<[number, Uint8Array]> => {
    const rt = buildRegionTable(l);
    const h = {
      fileWriteGuid: randomUuid(), dataWriteGuid: randomUuid(), logGuid: new Uint8Array(16),
      logVersion: 0, version: 1, logLength: l.logSize, logOffset: l.logOffset,
    };
    const crc = (b: Uint8Array) => crc32c(b, 4);
    return [
      [0, buildIdentifier()],
      [HEADER1_AT, buildHeader({ ...h, sequence: 1n }, crc)],
      [HEADER2_AT, buildHeader({ ...h, sequence: 2n }, crc)],
      [REGION1_AT, rt],
      [REGION2_AT, rt],
      [l.metaOffset, buildMetadata(l)],
      [l.batOffset, bat],
    ];
  };
  const finish = async (end: number) => {
    if (done) return;
    done = true;
    await sink.truncate?.(end);
    // Headers last (reverse order): an interrupted image has no valid header.
    for (const [at, b] of metadata().reverse()) await sink.write(b, at);
  };
  const abort = async () => { done = true; await sink.truncate?.(0).catch(() => {}); };

  if (l.fixed) {
    for (let i = 0; i < l.blocks; i++) setBatEntry(bdv, entryOf(i), PAYLOAD_FULLY_PRESENT, l.dataOffset + i * bs);
    const end = l.dataOffset + l.blocks * bs;
    if (!sink.seekable) {
      // A fixed VHDX's layout is known up front: metadata first, then every block in order.
      const seq = new SequentialOut(write, sink.name);
      for (const [at, b] of metadata()) await seq.put(b, at);
      await seq.fillTo(l.dataOffset);
      return {
        async writeData(offset, data) {
          if (offset + data.length > l.size) throw new InvalidArgument(`data at ${offset} is past the disk end`, { file: sink.name });
          await seq.put(data, l.dataOffset + offset);
        },
        async finish() {
          if (done) return;
          done = true;
          await seq.fillTo(end);
        },
        abort,
      };
    }
    let pos = 0; // guest bytes written so far (gaps are written as zeros)
    return {
      async writeData(offset, data) {
        if (offset < pos) throw new InvalidArgument(`data at ${offset} arrived after data up to ${pos}`, { file: sink.name });
        if (offset + data.length > l.size) throw new InvalidArgument(`data at ${offset} is past the disk end`, { file: sink.name });
        if (offset > pos) await writeZeros(write, l.dataOffset + pos, offset - pos);
        await sink.write(data, l.dataOffset + offset);
        pos = offset + data.length;
      },
      async writeZero(offset, length) {
        if (offset > pos) await writeZeros(write, l.dataOffset + pos, offset - pos);
        await writeZeros(write, l.dataOffset + offset, length);
        pos = offset + length;
      },
      async finish() {
        if (!done) await writeZeros(write, l.dataOffset + pos, l.blocks * bs - pos);
        await finish(end);
      },
      abort,
    };
  }

  if (!sink.seekable) throw new UnsupportedFeature('dynamic VHDX images need a seekable output (subformat=fixed can stream)', { file: sink.name });
  const placer = new BlockPlacer(bs, l.size, (bi) => {
    const at = next;
    next += bs;
    setBatEntry(bdv, entryOf(bi), PAYLOAD_FULLY_PRESENT, at);
    return at;
  }, write, sink.name);
  return {
    writeData: (offset, data) => placer.place(offset, data),
    async finish() { await finish(next); },
    abort,
  };
}

export function measureVhdx(virtualSize: number, allocatedBytes: number, options: Record<string, string>): { required: number; fullyAllocated: number } {
  const l = vhdxLayout(virtualSize, options);
  const full = l.dataOffset + l.blocks * l.blockSize;
  if (l.fixed) return { required: full, fullyAllocated: full };
  return { required: l.dataOffset + Math.min(l.blocks, Math.ceil(allocatedBytes / l.blockSize)) * l.blockSize, fullyAllocated: full };
}
