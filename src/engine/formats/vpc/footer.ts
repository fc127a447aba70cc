// The VHD footer (512 bytes at the end of every VHD, copied at the start of dynamic
// ones) and the dynamic-disk header, per Microsoft's "Virtual Hard Disk Image Format
// Specification". All fields are big-endian; checksums are the one's complement of the
// byte sum with the checksum field taken as zero.

import type { Chs } from '../../block/chs.js';

export const FOOTER_SIZE = 512;
export const DYN_HEADER_SIZE = 1024;
export const DISK_FIXED = 2;
export const DISK_DYNAMIC = 3;
export const DISK_DIFFERENCING = 4;
/** 2040 GiB: the largest disk the spec (and qemu) allow. */
export const VHD_MAX_SIZE = 0xff000000 * 512;
/** Seconds between the Unix epoch and the VHD epoch (2000-01-01 00:00:00 UTC). */
export const VHD_EPOCH = 946684800;

export interface Footer {
  features: number;
  version: number;
  dataOffset: number; // -1 for fixed disks (0xFFFFFFFFFFFFFFFF)
  timestamp: number;
  creatorApp: string;
  creatorVersion: number;
  creatorOs: string;
  originalSize: number;
  currentSize: number;
  geometry: Chs;
  diskType: number;
  checksum: number;
  uniqueId: Uint8Array;
  savedState: number;
}

export function vhdChecksum(b: Uint8Array, checksumAt: number): number {
  let sum = 0;
  for (let i = 0; i < b.length; i++) if (i < checksumAt || i >= checksumAt + 4) sum += b[i]!;
  return (~sum) >>> 0;
}

function u64(dv: DataView, at: number): number {
  const hi = dv.getUint32(at);
  const lo = dv.getUint32(at + 4);
  if (hi === 0xffffffff && lo === 0xffffffff) return -1;
  return hi * 2 ** 32 + lo; // may exceed 2^53 for garbage: callers range-check
}
function put64(dv: DataView, at: number, v: number): void {
  if (v < 0) { dv.setUint32(at, 0xffffffff); dv.setUint32(at + 4, 0xffffffff); return; }
  dv.setUint32(at, Math.floor(v / 2 ** 32));
  dv.setUint32(at + 4, v >>> 0);
}
const ascii = (b: Uint8Array) => Buffer.from(b).toString('latin1');

export function isFooter(b: Uint8Array): boolean {
  return b.length >= 8 && ascii(b.subarray(0, 8)) === 'conectix';
}

export function parseFooter(b: Uint8Array): Footer {
  const dv = new DataView(b.buffer, b.byteOffset, FOOTER_SIZE);
  return {
    features: dv.getUint32(8),
    version: dv.getUint32(12),
    dataOffset: u64(dv, 16),
    timestamp: dv.getUint32(24),
    creatorApp: ascii(b.subarray(28, 32)),
    creatorVersion: dv.getUint32(32),
    creatorOs: ascii(b.subarray(36, 40)),
    originalSize: u64(dv, 40),
    currentSize: u64(dv, 48),
    geometry: { cylinders: dv.getUint16(56), heads: b[58]!, sectorsPerTrack: b[59]! },
    diskType: dv.getUint32(60),
    checksum: dv.getUint32(64),
    uniqueId: b.slice(68, 84),
    savedState: b[84]!,
  };
}

export function buildFooter(f: Omit<Footer, 'checksum' | 'features' | 'version'>): Uint8Array {
  const b = new Uint8Array(FOOTER_SIZE);
  const dv = new DataView(b.buffer);
  b.set(Buffer.from('conectix', 'latin1'), 0);
  dv.setUint32(8, 2); // "reserved" feature bit, always set
  dv.setUint32(12, 0x00010000);
  put64(dv, 16, f.dataOffset);
  dv.setUint32(24, f.timestamp);
  b.set(Buffer.from(f.creatorApp.padEnd(4, '\0').slice(0, 4), 'latin1'), 28);
  dv.setUint32(32, f.creatorVersion);
  b.set(Buffer.from(f.creatorOs.padEnd(4, '\0').slice(0, 4), 'latin1'), 36);
  put64(dv, 40, f.originalSize);
  put64(dv, 48, f.currentSize);
  dv.setUint16(56, f.geometry.cylinders);
  b[58] = f.geometry.heads;
  b[59] = f.geometry.sectorsPerTrack;
  dv.setUint32(60, f.diskType);
  b.set(f.uniqueId.subarray(0, 16), 68);
  b[84] = f.savedState;
  dv.setUint32(64, vhdChecksum(b, 64));
  return b;
}

export interface ParentLocator {
  platformCode: string;
  dataSpace: number;
  dataLength: number;
  dataOffset: number;
}

export interface DynamicHeader {
  tableOffset: number;
  maxTableEntries: number;
  blockSize: number;
  checksum: number;
  parentUniqueId: Uint8Array;
  parentTimestamp: number;
  parentName: string;
  locators: ParentLocator[];
}

export function parseDynamicHeader(b: Uint8Array): DynamicHeader {
  const dv = new DataView(b.buffer, b.byteOffset, DYN_HEADER_SIZE);
  const locators: ParentLocator[] = [];
  for (let i = 0; i < 8; i++) {
    const at = 576 + i * 24;
    const code = dv.getUint32(at);
    if (code === 0) continue;
    locators.push({ platformCode: ascii(b.subarray(at, at + 4)), dataSpace: dv.getUint32(at + 4), dataLength: dv.getUint32(at + 8), dataOffset: u64(dv, at + 16) });
  }
  return {
    tableOffset: u64(dv, 16),
    maxTableEntries: dv.getUint32(28),
    blockSize: dv.getUint32(32),
    checksum: dv.getUint32(36),
    parentUniqueId: b.slice(40, 56),
    parentTimestamp: dv.getUint32(56),
    parentName: utf16be(b.subarray(64, 576)),
    locators,
  };
}

export function utf16be(b: Uint8Array): string {
  const sw = Buffer.from(b.slice(0, b.length & ~1));
  sw.swap16();
  const s = sw.toString('utf16le');
  const nul = s.indexOf('\0');
  return nul >= 0 ? s.slice(0, nul) : s;
}

export function buildDynamicHeader(h: { tableOffset: number; maxTableEntries: number; blockSize: number; parentUniqueId?: Uint8Array; parentTimestamp?: number; parentName?: string; locators?: ParentLocator[] }): Uint8Array {
  const b = new Uint8Array(DYN_HEADER_SIZE);
  const dv = new DataView(b.buffer);
  b.set(Buffer.from('cxsparse', 'latin1'), 0);
  put64(dv, 8, -1);
  put64(dv, 16, h.tableOffset);
  dv.setUint32(24, 0x00010000);
  dv.setUint32(28, h.maxTableEntries);
  dv.setUint32(32, h.blockSize);
  if (h.parentUniqueId) b.set(h.parentUniqueId, 40);
  dv.setUint32(56, h.parentTimestamp ?? 0);
  if (h.parentName) {
    const n = Buffer.from(h.parentName, 'utf16le');
    n.swap16();
    b.set(n.subarray(0, 510), 64);
  }
  (h.locators ?? []).slice(0, 8).forEach((l, i) => {
    const at = 576 + i * 24;
    b.set(Buffer.from(l.platformCode, 'latin1').subarray(0, 4), at);
    dv.setUint32(at + 4, l.dataSpace);
    dv.setUint32(at + 8, l.dataLength);
    put64(dv, at + 16, l.dataOffset);
  });
  dv.setUint32(36, vhdChecksum(b, 36));
  return b;
}

/**
 * The guest size qemu gives an existing VHD. Virtual PC sized disks by CHS geometry,
 * Hyper-V and most others by the footer's current size; qemu tells them apart by the
 * creator application, and uses the current size whenever the geometry is the maximum
 * (the size could not be expressed in CHS). We follow the same rule so that
 * `info` agrees with qemu-img for every image.
 */
export function vhdVirtualSize(f: Footer): { size: number; fromChs: boolean } {
  const chs = f.geometry.cylinders * f.geometry.heads * f.geometry.sectorsPerTrack;
  const currentSizeApps = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];
  const useChs = !currentSizeApps.includes(f.creatorApp) && chs !== 65535 * 16 * 255;
  if (useChs) return { size: chs * 512, fromChs: true };
  return { size: Math.floor(f.currentSize / 512) * 512, fromChs: false };
}
