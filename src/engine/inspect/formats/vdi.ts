// VDI (VirtualBox): the 1.1 header, image type, parent UUIDs, block map bounds and the
// number of blocks the file can really hold.
import type { FormatChecker } from '../types.js';
import { fit, has, isZero, slice, u32le, u64le } from '../view.js';

const SIGNATURE = 0xbeda107f;
const MiB = 1024 * 1024;

export const vdi: FormatChecker = {
  name: 'vdi',
  match(v) { return has(v.head, 0x40, 4) && u32le(v.head, 0x40) === SIGNATURE; },
  need(head) {
    if (!has(head, 0, 0x1c8)) return 0x1c8;
    return fit(u32le(head, 0x154) + u32le(head, 0x180) * 4);
  },
  inspect(v, r) {
    r.format = 'vdi';
    const b = v.head;
    if (v.size < 0x1c8 || !has(b, 0, 0x1c8)) { r.unsafe('header-cut-short', `VDI signature, but the file (${v.size} bytes) is shorter than the header`); return; }
    const version = u32le(b, 0x44);
    if (version !== 0x00010001) { r.unsafe('invalid-header', `VDI version ${(version >>> 16)}.${version & 0xffff} is not 1.1`, 0x44); return; }
    const type = u32le(b, 0x4c);
    const bmap = u32le(b, 0x154);
    const data = u32le(b, 0x158);
    const sectorSize = u32le(b, 0x168);
    const diskSize = u64le(b, 0x170);
    const blockSize = u32le(b, 0x178);
    const blockExtra = u32le(b, 0x17c);
    const blocks = u32le(b, 0x180);
    const allocated = u32le(b, 0x184);
    r.subformat = type === 1 ? 'dynamic' : type === 2 ? 'static' : type === 3 ? 'undo' : type === 4 ? 'diff' : `type ${type}`;
    r.clusterSize = blockSize;
    // qemu rounds an odd VDI disk size up to whole sectors (VBoxManage convertfromraw makes them).
    r.setVirtualSize(diskSize < Number.MAX_SAFE_INTEGER ? Math.ceil(diskSize / 512) * 512 : diskSize);
    if (type === 3 || type === 4 || !isZero(b, 0x1a8, 32)) {
      if (!r.opts.allowBackingFile || (type !== 3 && type !== 4)) r.unsafe('differencing', `a ${r.subformat} VDI linked to a parent image`, 0x1a8);
    } else if (type !== 1 && type !== 2) { r.unsafe('invalid-header', `VDI image type ${type} unknown`, 0x4c); return; }
    if (sectorSize !== 512) r.unsafe('invalid-header', `sector size ${sectorSize} (qemu reads 512 only)`, 0x168);
    if (blockSize !== 1 * MiB) r.unsafe('invalid-header', `block size ${blockSize} (qemu reads 1 MiB blocks only)`, 0x178);
    if (blockExtra !== 0) r.unsafe('invalid-header', `block extra data ${blockExtra} (qemu reads 0 only)`, 0x17c);
    if (bmap % 512 !== 0 || data % 512 !== 0) r.unsafe('invalid-header', 'block map or data offset not sector aligned', 0x154);
    if (blockSize === 0) return;
    if (diskSize > blocks * blockSize) r.unsafe('size-mismatch', `disk size ${diskSize} is larger than ${blocks} blocks of ${blockSize} bytes`, 0x180);
    if (allocated > blocks) r.unsafe('size-mismatch', `${allocated} allocated blocks out of ${blocks}`, 0x184);
    if (bmap < 0x1c8 || bmap + blocks * 4 > data) r.unsafe('table-outside-file', `block map (${blocks} entries at ${bmap}) overlaps the header or the data area at ${data}`, 0x154);
    r.within(v, 'block map', bmap, blocks * 4);
    const needed = data + allocated * (blockSize + blockExtra);
    if (needed > v.size) r.unsafe('size-mismatch', `${allocated} allocated blocks need ${needed} bytes; the file has ${v.size}`, 0x184);
    const t = slice(v, bmap, blocks * 4);
    if (t) {
      for (let i = 0; i < blocks; i++) {
        const e = u32le(t, i * 4);
        if (e >= 0xfffffffe) continue; // unallocated / zero
        if (e >= allocated) { r.unsafe('table-outside-file', `block map entry ${i} points at block ${e} of ${allocated} allocated`, bmap + i * 4); break; }
        if (!r.within(v, `data block ${e}`, data + e * blockSize, blockSize)) break;
      }
    }
  },
};
