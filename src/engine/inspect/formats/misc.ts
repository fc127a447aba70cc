// Formats recognised so that they are never mistaken for raw: compressed streams and
// archives (their contents cannot be judged without unpacking), Parallels/ploop, and the
// other formats qemu would probe by content (LUKS, bochs, cloop, DMG).
import type { FormatChecker } from '../types.js';
import { bytesEq, has, slice, u32le, u64le } from '../view.js';

function compressed(name: string, test: (b: Uint8Array) => boolean): FormatChecker {
  return {
    name,
    match: (v) => test(v.head),
    inspect(v, r) {
      r.format = name;
      r.unsafe('compressed', `the upload is ${name}-compressed; its content can only be judged after decompression`);
    },
  };
}

export const gzip = compressed('gzip', (b) => b[0] === 0x1f && b[1] === 0x8b && b[2] === 8);
export const xz = compressed('xz', (b) => bytesEq(b, 0, '\xfd7zXZ\0'));
export const bzip2 = compressed('bzip2', (b) => bytesEq(b, 0, 'BZh') && b[3]! >= 0x31 && b[3]! <= 0x39 && bytesEq(b, 4, '1AY&SY'));
export const zstd = compressed('zstd', (b) => bytesEq(b, 0, '\x28\xb5\x2f\xfd'));

export const ova: FormatChecker = {
  name: 'ova',
  match: (v) => bytesEq(v.head, 257, 'ustar'),
  inspect(v, r) {
    r.format = 'ova';
    r.unsafe('archive', 'the upload is a tar archive (OVA); its disks must be inspected one by one');
  },
};

export const ploop: FormatChecker = {
  name: 'ploop',
  match: (v) => bytesEq(v.head, 0, 'WithoutFreeSpace') || bytesEq(v.head, 0, 'WithouFreSpacExt'),
  inspect(v, r) {
    r.format = 'ploop';
    const b = v.head;
    if (!has(b, 0, 64) || v.size < 64) { r.unsafe('header-cut-short', 'Parallels header cut short'); return; }
    const version = u32le(b, 16);
    const tracks = u32le(b, 28);
    const batEntries = u32le(b, 32);
    const sectors = u64le(b, 36);
    const dataOff = u32le(b, 48);
    const extOff = u64le(b, 56);
    if (version !== 2) r.unsafe('invalid-header', `Parallels version ${version}`, 16);
    if (tracks === 0) { r.unsafe('invalid-header', 'cluster size of 0 sectors', 28); return; }
    r.clusterSize = tracks * 512;
    r.setVirtualSize(sectors * 512);
    if (batEntries * tracks < sectors) r.unsafe('size-mismatch', `${batEntries} BAT entries of ${tracks} sectors cannot cover ${sectors} sectors`, 32);
    r.within(v, 'BAT', 64, batEntries * 4);
    if (dataOff) r.within(v, 'data area', dataOff * 512, 0);
    if (extOff) r.within(v, 'format extension', extOff * tracks * 512, tracks * 512);
    const bat = slice(v, 64, batEntries * 4);
    if (bat) {
      for (let i = 0; i < batEntries; i++) {
        const s = u32le(bat, i * 4);
        if (s && !r.within(v, `cluster ${i}`, s * (bytesEq(b, 0, 'WithouFreSpacExt') ? tracks * 512 : 512), tracks * 512)) break;
      }
    }
  },
};

function unsupported(name: string, test: (b: Uint8Array, v: { size: number; tail: Uint8Array }) => boolean, what: string): FormatChecker {
  return {
    name,
    match: (v) => test(v.head, v),
    inspect(v, r) {
      r.format = name;
      r.unsafe('unsupported-format', `${what} images are not accepted`);
    },
  };
}

export const luks = unsupported('luks', (b) => bytesEq(b, 0, 'LUKS\xba\xbe'), 'LUKS-encrypted');
export const bochs = unsupported('bochs', (b) => bytesEq(b, 0, 'Bochs Virtual HD Image'), 'Bochs');
export const cloop = unsupported('cloop', (b) => bytesEq(b, 0, '#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0'), 'cloop');
export const dmg = unsupported('dmg', (_b, v) => v.size >= 512 && v.tail.length >= 512 && bytesEq(v.tail, v.tail.length - 512, 'koly'), 'Apple DMG');
