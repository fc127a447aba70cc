// ISO 9660 and UDF optical-disc images. qemu calls these "raw"; we name them "iso" so
// that inspectors and the image service can tell a CD image from a disk. The data is
// read as is: the guest sees the file.

import type { BlockDevice, DeviceInfo, Extent, FormatDriver, OpenContext, ProbeInput } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { readExact } from '../../block/bat.js';
import { CorruptImage, InvalidArgument } from '../../errors.js';

const VD_START = 16 * 2048; // volume descriptors start at sector 16

function ident(b: Uint8Array, at: number): string {
  return at + 6 <= b.length ? Buffer.from(b.subarray(at + 1, at + 6)).toString('latin1') : '';
}

/** Which volume descriptors the first 64 KiB hold: ISO 9660 ("CD001") and/or UDF ("BEA01" ... "NSR02/03"). */
function kinds(head: Uint8Array): { iso9660: boolean; udf: boolean } {
  let iso9660 = false, udf = false, bea = false;
  for (let at = VD_START; at + 2048 <= head.length; at += 2048) {
    const id = ident(head, at);
    if (id === 'CD001') iso9660 = true;
    else if (id === 'BEA01') bea = true;
    else if (bea && (id === 'NSR02' || id === 'NSR03')) udf = true;
    else if (id === 'TEA01' || id === '') { if (!iso9660 && !bea) break; }
    if (id === 'TEA01') break;
  }
  return { iso9660, udf };
}

function probe(input: ProbeInput): number {
  const k = kinds(input.head);
  // Above raw (1), below formats with a header of their own: a hybrid image with,
  // say, a VHD footer is that format first.
  return k.iso9660 || k.udf ? 50 : 0;
}

class IsoDevice implements BlockDevice {
  readonly format = 'iso';
  readonly name: string;
  readonly backing = null;
  readonly virtualSize: number;
  constructor(private src: ByteSource, private volumeId: string | null) {
    this.name = src.name;
    this.virtualSize = src.size;
  }
  async read(buf: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + buf.length > this.virtualSize) throw new InvalidArgument(`read at ${offset}+${buf.length} is outside the image`, { file: this.name });
    await readExact(this.src, buf, offset, 'ISO data');
  }
  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    const end = Math.min(this.virtualSize, offset + length);
    if (end > offset) yield { offset, length: end - offset, kind: 'data', hostOffset: offset };
  }
  describe(): DeviceInfo {
    return this.volumeId ? { humanLines: [`volume id: ${this.volumeId}`] } : {};
  }
  async close(): Promise<void> { await this.src.close(); }
}

async function openIso(src: ByteSource, _ctx: OpenContext): Promise<BlockDevice> {
  const head = new Uint8Array(Math.min(src.size, 64 * 1024));
  await readExact(src, head, 0, 'ISO volume descriptors');
  const k = kinds(head);
  if (!k.iso9660 && !k.udf) throw new CorruptImage('no ISO 9660 or UDF volume descriptor at sector 16', { file: src.name, offset: VD_START });
  let volumeId: string | null = null;
  for (let at = VD_START; at + 2048 <= head.length; at += 2048) {
    if (ident(head, at) !== 'CD001' || head[at] !== 1) continue;
    // Primary volume descriptor: check it describes no more than the file holds.
    const dv = new DataView(head.buffer, head.byteOffset + at, 2048);
    const blocks = dv.getUint32(80, true);
    const blockSize = dv.getUint16(128, true);
    if (blockSize !== 512 && blockSize !== 1024 && blockSize !== 2048) throw new CorruptImage(`ISO logical block size ${blockSize}`, { file: src.name, offset: at + 128 });
    if (blocks * blockSize > src.size) {
      throw new CorruptImage(`ISO volume of ${blocks * blockSize} bytes is larger than the ${src.size}-byte file (truncated?)`, { file: src.name, offset: at + 80 });
    }
    volumeId = Buffer.from(head.subarray(at + 40, at + 72)).toString('latin1').trim() || null;
    break;
  }
  return new IsoDevice(src, volumeId);
}

export const isoFormat: FormatDriver = {
  name: 'iso',
  description: 'ISO 9660 / UDF optical disc image (read as raw data)',
  probe,
  open: openIso,
};
