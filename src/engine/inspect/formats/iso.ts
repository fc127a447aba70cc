// ISO 9660 / UDF: volume descriptors from 32 KiB on. qemu reads ISOs as raw; anything
// in the 32 KiB system area that another reader would take for a header is a polyglot.
import type { FormatChecker } from '../types.js';
import { bytesEq, has, u16le, u32le } from '../view.js';

const DESCRIPTORS = 0x8000;

export function isoDescriptor(b: Uint8Array): number | null {
  for (let i = 0; i < 16; i++) {
    const off = DESCRIPTORS + i * 2048;
    if (!has(b, off, 7)) return null;
    if (bytesEq(b, off + 1, 'CD001') || bytesEq(b, off + 1, 'BEA01') || bytesEq(b, off + 1, 'NSR02') || bytesEq(b, off + 1, 'NSR03')) return off;
  }
  return null;
}

export const iso: FormatChecker = {
  name: 'iso',
  match(v) { return isoDescriptor(v.head) !== null; },
  inspect(v, r) {
    r.format = 'iso';
    // The guest sees the whole file as a raw disk, like qemu does.
    r.setVirtualSize(Math.ceil(v.size / 512) * 512);
    const pvd = DESCRIPTORS;
    if (bytesEq(v.head, pvd + 1, 'CD001') && v.head[pvd] === 1 && has(v.head, pvd, 2048)) {
      const blocks = u32le(v.head, pvd + 80);
      const blockSize = u16le(v.head, pvd + 128);
      r.clusterSize = blockSize;
      if (blocks * blockSize > v.size) r.info('iso-short', `the volume descriptor claims ${blocks * blockSize} bytes, the file holds ${v.size}`);
    }
  },
};
