// Writing VHD images: fixed (data at its guest offset, footer at the end) and dynamic
// (footer copy, dynamic header, BAT, then 2 MiB blocks each behind its sector bitmap).
// Headers are written last, so an aborted image has no valid footer.
// Like qemu-img convert (cache=unsafe) the writers do not fsync; a caller that needs
// durability syncs the sink after finish().

import type { CreateRequest, ImageWriter } from '../../block/device.js';
import { BlockPlacer, SequentialOut } from '../../block/blockstream.js';
import { vhdCreateGeometry } from '../../block/chs.js';
import { randomUuid } from '../../block/uuid.js';
import { InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { DISK_DYNAMIC, DISK_FIXED, DYN_HEADER_SIZE, FOOTER_SIZE, VHD_EPOCH, VHD_MAX_SIZE, buildDynamicHeader, buildFooter } from './footer.js';

export const VPC_BLOCK_SIZE = 2 * 1024 * 1024;
const BITMAP_SIZE = 512; // one bit per sector of a 2 MiB block, padded to a sector

export function boolOpt(v: string | undefined, name: string): boolean {
  if (v === undefined) return false;
  if (/^(on|true|yes|1)$/i.test(v)) return true;
  if (/^(off|false|no|0)$/i.test(v)) return false;
  throw new InvalidArgument(`option ${name} must be on or off, not '${v}'`);
}

/** Disk size and geometry a new image gets (qemu's rules: CHS-rounded unless force_size). */
export function vpcLayout(virtualSize: number, options: Record<string, string>) {
  for (const k of Object.keys(options)) if (k !== 'subformat' && k !== 'force_size') throw new InvalidArgument(`unknown vpc option '${k}'`);
  const sub = options.subformat ?? 'dynamic';
  if (sub !== 'dynamic' && sub !== 'fixed') throw new InvalidArgument(`subformat must be dynamic or fixed, not '${sub}'`);
  const forceSize = boolOpt(options.force_size, 'force_size');
  let size: number;
  let geometry;
  if (forceSize) {
    // Exact size (Azure needs fixed VHDs of whole MiB): geometry set to the maximum so
    // readers take the footer's size, as qemu does.
    size = Math.ceil(virtualSize / 512) * 512;
    geometry = { cylinders: 65535, heads: 16, sectorsPerTrack: 255 };
  } else {
    ({ size, geometry } = vhdCreateGeometry(virtualSize));
  }
  if (size > VHD_MAX_SIZE) throw new InvalidArgument(`VHD images are limited to 2040 GiB; ${virtualSize} bytes requested`);
  return { fixed: sub === 'fixed', forceSize, size, geometry };
}

export async function createVpc(req: CreateRequest): Promise<ImageWriter> {
  const { sink } = req;
  if (req.backingFile) throw new UnsupportedFeature('creating differencing VHD images is not supported', { file: sink.name });
  if (!(req.virtualSize > 0)) throw new InvalidArgument('VHD images need a size', { file: sink.name });
  const { fixed, forceSize, size, geometry } = vpcLayout(req.virtualSize, req.options);
  const footerFor = (type: number, dataOffset: number) => buildFooter({
    dataOffset,
    timestamp: Math.max(0, Math.floor(Date.now() / 1000) - VHD_EPOCH) >>> 0,
    creatorApp: forceSize ? 'qem2' : 'qemu',
    creatorVersion: 0x00050003,
    creatorOs: 'Wi2k',
    originalSize: size,
    currentSize: size,
    geometry,
    diskType: type,
    uniqueId: randomUuid(),
    savedState: 0,
  });

  if (fixed) {
    let done = false;
    // A fixed VHD is the data followed by the footer, so it can also go to a pipe.
    const seq = sink.seekable ? null : new SequentialOut((b, o) => sink.write(b, o), sink.name);
    return {
      async writeData(offset, data) {
        if (offset < 0 || offset + data.length > size) throw new InvalidArgument(`data at ${offset} is past the disk end`, { file: sink.name });
        if (seq) await seq.put(data, offset);
        else await sink.write(data, offset);
      },
      async finish() {
        if (done) return;
        done = true;
        if (seq) await seq.fillTo(size);
        else await sink.truncate!(size);
        await sink.write(footerFor(DISK_FIXED, -1), size);
      },
      async abort() { done = true; await sink.truncate?.(0).catch(() => {}); },
    };
  }

  if (!sink.seekable) throw new UnsupportedFeature('dynamic VHD images need a seekable output (subformat=fixed can stream)', { file: sink.name });
  const entries = Math.ceil(size / VPC_BLOCK_SIZE);
  const batOffset = FOOTER_SIZE + DYN_HEADER_SIZE;
  const batBytes = Math.ceil(entries * 4 / 512) * 512;
  const bat = new Uint8Array(batBytes).fill(0xff);
  const batView = new DataView(bat.buffer);
  let next = batOffset + batBytes; // next block's bitmap goes here
  const bitmap = new Uint8Array(BITMAP_SIZE).fill(0xff);
  const placer = new BlockPlacer(VPC_BLOCK_SIZE, size, async (bi) => {
    // A new block: its all-ones sector bitmap, then the data (unwritten parts stay holes: zeros).
    const at = next;
    next += BITMAP_SIZE + VPC_BLOCK_SIZE;
    batView.setUint32(bi * 4, at / 512);
    await sink.write(bitmap, at);
    return at + BITMAP_SIZE;
  }, (buf, off) => sink.write(buf, off), sink.name);
  let done = false;
  return {
    writeData: (offset, data) => placer.place(offset, data),
    async finish() {
      if (done) return;
      done = true;
      const footer = footerFor(DISK_DYNAMIC, FOOTER_SIZE);
      await sink.write(bat, batOffset);
      await sink.write(buildDynamicHeader({ tableOffset: batOffset, maxTableEntries: entries, blockSize: VPC_BLOCK_SIZE }), FOOTER_SIZE);
      await sink.write(footer, next);
      await sink.truncate?.(next + FOOTER_SIZE);
      await sink.write(footer, 0);
    },
    async abort() { done = true; await sink.truncate?.(0).catch(() => {}); },
  };
}

export function measureVpc(virtualSize: number, allocatedBytes: number, options: Record<string, string>): { required: number; fullyAllocated: number } {
  const { fixed, size } = vpcLayout(virtualSize, options);
  if (fixed) return { required: size + FOOTER_SIZE, fullyAllocated: size + FOOTER_SIZE };
  const entries = Math.ceil(size / VPC_BLOCK_SIZE);
  const meta = FOOTER_SIZE + DYN_HEADER_SIZE + Math.ceil(entries * 4 / 512) * 512 + FOOTER_SIZE;
  const blocks = Math.min(entries, Math.ceil(allocatedBytes / VPC_BLOCK_SIZE));
  return { required: meta + blocks * (VPC_BLOCK_SIZE + BITMAP_SIZE), fullyAllocated: meta + entries * (VPC_BLOCK_SIZE + BITMAP_SIZE) };
}
