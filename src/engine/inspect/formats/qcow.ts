// qcow version 1 (and QED, which qemu also probes by content and which has backing files too).
import type { FormatChecker } from '../types.js';
import { ascii, bytesEq, has, printable, slice, u32be, u32le, u64be, u64le, floorTo } from '../view.js';
import { backingFinding } from './qcow2.js';

export const qcow: FormatChecker = {
  name: 'qcow',
  match(v) { return bytesEq(v.head, 0, 'QFI\xfb') && has(v.head, 4, 4) && u32be(v.head, 4) === 1; },
  need() { return 48 + 1024; },
  inspect(v, r) {
    r.format = 'qcow';
    r.subformat = 'v1';
    const b = v.head;
    if (v.size < 48) { r.unsafe('header-cut-short', `qcow magic, but the file (${v.size} bytes) is shorter than the 48-byte header`); return; }
    const backingOffset = u64be(b, 8);
    const backingSize = u32be(b, 16);
    const size = u64be(b, 24);
    const clusterBits = b[32]!;
    const l2Bits = b[33]!;
    const crypt = u32be(b, 36);
    const l1Offset = u64be(b, 40);
    if (clusterBits < 9 || clusterBits > 16 || l2Bits < 6 || l2Bits > 13) {
      r.unsafe('invalid-header', `cluster_bits ${clusterBits} / l2_bits ${l2Bits} outside qemu's limits`, 32);
      return;
    }
    r.clusterSize = 2 ** clusterBits;
    r.setVirtualSize(floorTo(size));
    if (crypt > 1) r.unsafe('invalid-header', `crypt_method ${crypt} unknown`, 36);
    else if (crypt === 1) r.info('encrypted', 'the image is AES encrypted', 36);
    if (backingOffset !== 0 && backingSize > 0) {
      if (backingSize > 1023) r.unsafe('invalid-header', `backing file name of ${backingSize} bytes is longer than 1023`, 16);
      const name = slice(v, backingOffset, Math.min(backingSize, 1023));
      if (name) r.backingFile = printable(ascii(name, 0, name.length));
      else r.within(v, 'backing file name', backingOffset, backingSize);
      backingFinding(r, r.backingFile ?? '');
    }
    const shift = clusterBits + l2Bits;
    const l1Size = Math.ceil(size / 2 ** shift);
    if (l1Size * 8 > 32 * 1024 * 1024) { r.unsafe('invalid-header', `L1 table of ${l1Size} entries is too large`, 24); return; }
    r.within(v, 'L1 table', l1Offset, l1Size * 8);
  },
};

export const qed: FormatChecker = {
  name: 'qed',
  match(v) { return bytesEq(v.head, 0, 'QED\0'); },
  need() { return 4096; },
  inspect(v, r) {
    r.format = 'qed';
    const b = v.head;
    r.unsafe('unsupported-format', 'QED images are not accepted (qemu would open them by content, backing files included)');
    if (!has(b, 0, 64)) { r.unsafe('header-cut-short', 'QED header cut short'); return; }
    r.clusterSize = u32le(b, 4);
    r.setVirtualSize(floorTo(u64le(b, 48)));
    const features = u64le(b, 16);
    const nameOff = u32le(b, 56);
    const nameLen = u32le(b, 60);
    if ((features & 1) && nameLen > 0) {
      const name = slice(v, nameOff, Math.min(nameLen, 1023));
      r.backingFile = name ? printable(ascii(name, 0, name.length)) : undefined;
      backingFinding(r, r.backingFile ?? '');
    }
  },
};
