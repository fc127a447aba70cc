// A copy-on-write overlay held in memory: reads see earlier writes, the device below
// is never written. Used for read-only mounts (libext2fs may touch the superblock even
// when we only read) and for `sysprep --dry-run`.
import type { BlockDevice, DeviceInfo, Extent } from '../../engine/block/device.js';
import { InvalidArgument } from '../../engine/errors.js';

const SECTOR = 512;

export class OverlayDevice implements BlockDevice {
  readonly format: string;
  readonly name: string;
  readonly backing = null;
  private sectors = new Map<number, Uint8Array>();

  constructor(private below: BlockDevice) {
    this.format = below.format;
    this.name = below.name;
  }

  get virtualSize(): number { return this.below.virtualSize; }
  /** Bytes that would have been written to the device below. */
  get dirtyBytes(): number { return this.sectors.size * SECTOR; }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    await this.below.read(buf, offset);
    if (this.sectors.size === 0) return;
    const first = Math.floor(offset / SECTOR);
    const last = Math.floor((offset + buf.length - 1) / SECTOR);
    for (let s = first; s <= last; s++) {
      const data = this.sectors.get(s);
      if (!data) continue;
      const sStart = s * SECTOR;
      const from = Math.max(sStart, offset);
      const to = Math.min(sStart + SECTOR, offset + buf.length);
      buf.set(data.subarray(from - sStart, to - sStart), from - offset);
    }
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (offset < 0 || offset + buf.length > this.virtualSize) {
      throw new InvalidArgument(`write past the end of the device (${offset + buf.length} > ${this.virtualSize})`, { file: this.name });
    }
    let pos = offset;
    const end = offset + buf.length;
    while (pos < end) {
      const s = Math.floor(pos / SECTOR);
      const sStart = s * SECTOR;
      let data = this.sectors.get(s);
      if (!data) {
        data = new Uint8Array(SECTOR);
        // Partial sector: start from what is there now.
        if (pos > sStart || end < sStart + SECTOR) await this.read(data, sStart);
        this.sectors.set(s, data);
      }
      const to = Math.min(sStart + SECTOR, end);
      data.set(buf.subarray(pos - offset, to - offset), pos - sStart);
      pos = to;
    }
  }

  extents(offset: number, length: number): AsyncIterable<Extent> { return this.below.extents(offset, length); }
  describe(): DeviceInfo { return {}; }
  async flush(): Promise<void> { /* nothing reaches the device below */ }
  async close(): Promise<void> { this.sectors.clear(); }
}
