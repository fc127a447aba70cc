// raw: the guest bytes as they are. The probe fallback (score 1). Holes in the host
// file are reported as 'zero' extents when the OS can tell (SEEK_DATA/SEEK_HOLE via the
// native addon); the writer leaves zero runs as holes.
import type { BlockDevice, CreateRequest, DeviceInfo, Extent, FormatDriver, ImageWriter, OpenContext } from '../../block/device.js';
import type { ByteSink, ByteSource } from '../../io/source.js';
import { InvalidArgument, UnsupportedFeature } from '../../errors.js';
import { zeroBuffer } from '../../io/zero.js';

const PREALLOCATION = ['off', 'falloc', 'full'];

class RawDevice implements BlockDevice {
  readonly format = 'raw';
  readonly backing = null;
  readonly name: string;

  constructor(private src: ByteSource, private writable: boolean) {
    this.name = src.name;
  }

  /** Like qemu, a file whose length is not a whole number of sectors reads as if zero-padded to one. */
  get virtualSize(): number { return Math.ceil(this.src.size / 512) * 512; }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    const n = await this.src.read(buf, offset);
    if (n < buf.length) buf.fill(0, n); // the padding of the last sector
  }

  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    const end = Math.min(offset + length, this.virtualSize);
    if (offset >= end) return;
    const runs = this.src.dataRuns ? await this.src.dataRuns(offset, end - offset) : null;
    if (!runs) {
      yield { offset, length: end - offset, kind: 'data', hostOffset: offset };
      return;
    }
    let pos = offset;
    for (const r of runs) {
      const s = Math.max(r.offset, pos);
      const e = Math.min(r.offset + r.length, end);
      if (e <= s) continue;
      if (s > pos) yield { offset: pos, length: s - pos, kind: 'zero', hostOffset: pos };
      yield { offset: s, length: e - s, kind: 'data', hostOffset: s };
      pos = e;
    }
    if (pos < end) yield { offset: pos, length: end - pos, kind: 'zero', hostOffset: pos };
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (!this.writable || !this.src.write) throw new UnsupportedFeature('image opened read-only', { file: this.name });
    if (offset + buf.length > this.virtualSize) throw new InvalidArgument(`write past the end of the image (${offset + buf.length} > ${this.virtualSize})`, { file: this.name });
    await this.src.write(buf, offset);
  }

  describe(): DeviceInfo { return {}; }

  async flush(): Promise<void> { await this.src.sync?.(); }

  async resize(newSize: number, opts: { shrink: boolean; preallocation?: string }): Promise<void> {
    if (!this.writable || !this.src.truncate || !this.src.write) throw new UnsupportedFeature('image opened read-only', { file: this.name });
    const old = this.virtualSize;
    if (newSize < old && !opts.shrink) {
      throw new InvalidArgument('use the --shrink option to shrink an image (data past the new size is lost)', { file: this.name });
    }
    const prealloc = opts.preallocation ?? 'off';
    if (!PREALLOCATION.includes(prealloc)) throw new InvalidArgument(`unknown preallocation mode '${prealloc}'`, { file: this.name });
    await this.src.truncate(newSize);
    if (newSize > old && prealloc === 'full') {
      const z = zeroBuffer();
      for (let pos = old; pos < newSize; pos += z.length) await this.src.write(z.subarray(0, Math.min(z.length, newSize - pos)), pos);
    }
  }

  async close(): Promise<void> { await this.src.close(); }
}

/** Writes guest data as is; zero runs become holes (seekable) or written zeros (streams). */
class RawWriter implements ImageWriter {
  /** End of the last byte range handled, for gap filling. */
  private pos = 0;
  private readonly fillGaps: boolean;

  constructor(private sink: ByteSink, private size: number, private prealloc: string) {
    this.fillGaps = !sink.seekable || prealloc === 'full';
  }

  async start(): Promise<void> {
    if (this.sink.seekable) {
      await this.sink.truncate?.(this.size);
      if (this.prealloc === 'falloc') {
        if (!this.sink.allocate) throw new UnsupportedFeature('preallocation=falloc is not possible on this output', { file: this.sink.name });
        await this.sink.allocate(0, this.size);
      }
    }
  }

  private async fillTo(offset: number): Promise<void> {
    const z = zeroBuffer();
    while (this.pos < offset) {
      const n = Math.min(z.length, offset - this.pos);
      await this.sink.write(z.subarray(0, n), this.pos);
      this.pos += n;
    }
  }

  async writeData(offset: number, data: Uint8Array): Promise<void> {
    if (offset < this.pos) throw new InvalidArgument(`raw writer: out-of-order write at ${offset} (< ${this.pos})`, { file: this.sink.name });
    if (offset + data.length > this.size) throw new InvalidArgument(`raw writer: write past the end (${offset + data.length} > ${this.size})`, { file: this.sink.name });
    if (this.fillGaps) await this.fillTo(offset);
    await this.sink.write(data, offset);
    this.pos = offset + data.length;
  }

  async writeZero(offset: number, length: number): Promise<void> {
    // A fresh seekable file already reads zeros there; streams need the bytes.
    if (this.fillGaps) await this.fillTo(offset + length);
  }

  async finish(): Promise<void> {
    if (this.fillGaps) await this.fillTo(this.size);
    else await this.sink.truncate?.(this.size);
  }

  async abort(): Promise<void> { /* nothing buffered; the caller removes the file */ }
}

export const raw: FormatDriver = {
  name: 'raw',
  description: 'raw disk image: guest bytes as they are (sparse files keep holes)',
  probe: () => 1,
  streamable: true,
  createOptions: [
    { name: 'preallocation', type: 'enum', values: PREALLOCATION, default: 'off', help: 'off: sparse file; falloc: reserve space; full: write zeros' },
  ],
  async open(source: ByteSource, ctx: OpenContext): Promise<BlockDevice> {
    return new RawDevice(source, ctx.writable);
  },
  async create(req: CreateRequest): Promise<ImageWriter> {
    for (const k of Object.keys(req.options)) {
      if (k !== 'preallocation') throw new InvalidArgument(`raw does not support the option '${k}'`, { file: req.sink.name });
    }
    const prealloc = req.options.preallocation ?? 'off';
    if (!PREALLOCATION.includes(prealloc)) throw new InvalidArgument(`invalid preallocation '${prealloc}' (off, falloc, full)`, { file: req.sink.name });
    if (req.backingFile) throw new UnsupportedFeature('raw images cannot have a backing file', { file: req.sink.name });
    if (req.compress) throw new UnsupportedFeature('raw images cannot be compressed', { file: req.sink.name });
    const w = new RawWriter(req.sink, req.virtualSize, prealloc);
    await w.start();
    return w;
  },
  measure(virtualSize: number) {
    return { required: virtualSize, fullyAllocated: virtualSize };
  },
};
