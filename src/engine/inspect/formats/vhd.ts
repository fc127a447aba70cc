// VHD (qemu 'vpc', Glance 'vhd'): the footer at the end (and its copy at offset 0 for
// dynamic and differencing disks), the dynamic header, the BAT bounds, parent locators.
import type { FormatChecker, Report } from '../types.js';
import { type ImageView, HUGE, fit, ascii, bytesEq, has, printable, slice, u16be, u32be, u64be, utf16, floorTo } from '../view.js';

const COOKIE = 'conectix';
const TYPE_FIXED = 2;
const TYPE_DYNAMIC = 3;
const TYPE_DIFF = 4;
/** qemu's VHD_MAX_GEOMETRY: 65535 cylinders * 16 heads * 255 sectors. */
const MAX_GEOMETRY = 65535 * 16 * 255;

export interface VhdFooter {
  dataOffset: number; currentSize: number; cylinders: number; heads: number; spt: number;
  diskType: number; checksumOk: boolean; creator: string;
}

export function parseFooter(b: Uint8Array, off: number): VhdFooter | null {
  if (!has(b, off, 512) || !bytesEq(b, off, COOKIE)) return null;
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += b[off + i]!;
  const checksum = u32be(b, off + 64);
  return {
    dataOffset: u64be(b, off + 16),
    creator: ascii(b, off + 28, 4),
    currentSize: u64be(b, off + 48),
    cylinders: u16be(b, off + 56),
    heads: b[off + 58]!,
    spt: b[off + 59]!,
    diskType: u32be(b, off + 60),
    checksumOk: ((~sum) >>> 0) === checksum,
  };
}

/** The footer at the end of the file, if any. */
export function tailFooter(v: ImageView): VhdFooter | null {
  if (v.size < 512) return null;
  const t = slice(v, v.size - 512, 512);
  return t ? parseFooter(t, 0) : null;
}

/** qemu's choice between CHS geometry and current_size, by creator application. */
function virtualSize(f: VhdFooter): number {
  const chs = f.cylinders * f.heads * f.spt;
  const sizeCreators = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];
  if (sizeCreators.includes(f.creator) || chs === MAX_GEOMETRY) return f.currentSize;
  return chs * 512;
}

export const vhd: FormatChecker = {
  name: 'vhd',
  match(v) { return bytesEq(v.head, 0, COOKIE) || tailFooter(v) !== null; },
  need(head) {
    const f = parseFooter(head, 0);
    if (!f || f.dataOffset >= HUGE) return 512;
    // The dynamic header (1 KiB) and then the BAT, when it is near the start.
    if (!has(head, f.dataOffset, 1024)) return fit(f.dataOffset + 1024);
    const bat = u64be(head, f.dataOffset + 16);
    const entries = u32be(head, f.dataOffset + 28);
    return Math.max(fit(f.dataOffset + 1024), fit(bat + entries * 4));
  },
  inspect(v, r) { inspectVhd(v, r); },
};

function inspectVhd(v: ImageView, r: Report): void {
  r.format = 'vhd';
  const head = parseFooter(v.head, 0);
  const tail = tailFooter(v);
  if (bytesEq(v.head, 0, COOKIE) && !head) { r.unsafe('header-cut-short', `VHD cookie, but the file (${v.size} bytes) is shorter than a footer`); return; }
  const f = head ?? tail!;
  const where = head ? 0 : v.size - 512;
  if (head && !head.checksumOk) r.unsafe('bad-checksum', 'checksum mismatch in the footer copy at offset 0', 64);
  if (tail && !tail.checksumOk) r.unsafe('bad-checksum', 'checksum mismatch in the footer at the end', v.size - 512 + 64);
  if (head && !tail) r.unsafe('truncated', 'the footer copy at offset 0 has no matching footer at the end of the file (truncated?)');
  if (head && tail && (head.currentSize !== tail.currentSize || head.diskType !== tail.diskType || head.dataOffset !== tail.dataOffset)) {
    r.unsafe('invalid-header', 'the footer at offset 0 and the footer at the end disagree');
  }
  const vs = virtualSize(f);
  r.setVirtualSize(floorTo(vs));
  switch (f.diskType) {
    case TYPE_FIXED:
      r.subformat = 'fixed';
      if (head) r.unsafe('invalid-header', 'a fixed VHD with a footer copy at offset 0');
      if (f.currentSize > v.size - 512) r.unsafe('size-mismatch', `fixed VHD claims ${f.currentSize} bytes of data, the file holds ${v.size - 512}`);
      return;
    case TYPE_DYNAMIC:
    case TYPE_DIFF:
      r.subformat = f.diskType === TYPE_DIFF ? 'differencing' : 'dynamic';
      break;
    default:
      r.unsafe('invalid-header', `VHD disk type ${f.diskType} unknown`, where + 60);
      return;
  }
  // qemu takes a dynamic disk's footer from offset 0 only; without it the image does not open.
  if (!head) r.unsafe('invalid-header', 'dynamic VHD without the footer copy at offset 0');
  // Dynamic header.
  if (!r.within(v, 'dynamic disk header', f.dataOffset, 1024)) return;
  const d = slice(v, f.dataOffset, 1024);
  if (!d) { r.unsafe('invalid-header', `dynamic disk header at ${f.dataOffset} is too far into the file`); return; }
  if (!bytesEq(d, 0, 'cxsparse')) { r.unsafe('bad-magic', 'dynamic disk header lacks its cxsparse cookie', f.dataOffset); return; }
  const batOff = u64be(d, 16);
  const entries = u32be(d, 28);
  const blockSize = u32be(d, 32);
  if (blockSize < 512 || (blockSize & (blockSize - 1)) !== 0) { r.unsafe('invalid-header', `block size ${blockSize} is not a power of two >= 512`, f.dataOffset + 32); return; }
  r.clusterSize = blockSize;
  if (entries > 0x1fffffff) { r.unsafe('invalid-header', `${entries} BAT entries is too many`, f.dataOffset + 28); return; }
  if (entries * blockSize < vs) r.unsafe('size-mismatch', `the BAT covers ${entries * blockSize} bytes, less than the virtual size ${vs}`, f.dataOffset + 28);
  if (r.within(v, 'block allocation table', batOff, entries * 4)) {
    const bat = slice(v, batOff, entries * 4);
    if (bat) {
      const bitmap = Math.ceil(blockSize / 512 / 8 / 512) * 512;
      for (let i = 0; i < entries; i++) {
        const s = u32be(bat, i * 4);
        if (s !== 0xffffffff && !r.within(v, `data block ${i}`, s * 512, bitmap + blockSize)) break;
      }
    }
  }
  // Parent: the type says so, or locators are filled in.
  const parentName = utf16(d, 64, 512, false);
  let locators = 0;
  for (let i = 0; i < 8; i++) if (u32be(d, 576 + i * 24) !== 0) locators++;
  if (f.diskType === TYPE_DIFF || locators > 0) {
    r.backingFile = printable(parentName);
    const what = f.diskType === TYPE_DIFF ? 'a differencing VHD' : `a dynamic VHD with ${locators} parent locator(s)`;
    if (!r.opts.allowBackingFile || f.diskType !== TYPE_DIFF) r.unsafe('differencing', `${what}${parentName ? ` (parent '${printable(parentName)}')` : ''}; its parent would be opened`, f.dataOffset + 64);
  }
}
