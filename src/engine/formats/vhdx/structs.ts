// VHDX on-disk structures (Microsoft "VHDX Format Specification" v1.0): the file
// identifier, the two headers, region tables, metadata table and items, BAT entries.
// All integers little-endian; GUIDs in Microsoft byte order; checksums are CRC-32C.

import { guidFromString } from '../../block/uuid.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const HEADER1_AT = 64 * KiB;
export const HEADER2_AT = 128 * KiB;
export const REGION1_AT = 192 * KiB;
export const REGION2_AT = 256 * KiB;
export const HEADER_SIZE = 4 * KiB;
export const REGION_SIZE = 64 * KiB;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const MAX_VIRTUAL_SIZE = 64 * 1024 * 1024 * MiB; // 64 TiB

export const BAT_GUID = guidFromString('2DC27766-F623-4200-9D64-115E9BFD4A08');
export const METADATA_GUID = guidFromString('8B7CA206-4790-4B9A-B8FE-575F050F886E');
export const FILE_PARAMETERS = guidFromString('CAA16737-FA36-4D43-B3B6-33F0AA44E76B');
export const VIRTUAL_DISK_SIZE = guidFromString('2FA54224-CD1B-4876-B211-5DBED83BF4B8');
export const PAGE83_DATA = guidFromString('BECA12AB-B2E6-4523-93EF-C309E000C746');
export const LOGICAL_SECTOR_SIZE = guidFromString('8141BF1D-A96F-4709-BA47-F233A8FAAB5F');
export const PHYSICAL_SECTOR_SIZE = guidFromString('CDA348C7-445D-4471-9CC9-E9885251C556');
export const PARENT_LOCATOR = guidFromString('A8D35F2D-B30B-454D-ABF7-D3D84834AB0C');
export const VHDX_PARENT_LOCATOR_TYPE = guidFromString('B04AEFB7-D19E-4A81-B789-25B8E9445913');

// BAT entry states (low 3 bits).
export const PAYLOAD_NOT_PRESENT = 0;
export const PAYLOAD_UNDEFINED = 1;
export const PAYLOAD_ZERO = 2;
export const PAYLOAD_UNMAPPED = 3;
export const PAYLOAD_FULLY_PRESENT = 6;
export const PAYLOAD_PARTIALLY_PRESENT = 7;
export const SB_PRESENT = 6;

export interface Header {
  at: number;
  sequence: bigint;
  fileWriteGuid: Uint8Array;
  dataWriteGuid: Uint8Array;
  logGuid: Uint8Array;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

export function parseHeader(b: Uint8Array, at: number): Header {
  const dv = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  return {
    at,
    sequence: dv.getBigUint64(8, true),
    fileWriteGuid: b.slice(16, 32),
    dataWriteGuid: b.slice(32, 48),
    logGuid: b.slice(48, 64),
    logVersion: dv.getUint16(64, true),
    version: dv.getUint16(66, true),
    logLength: dv.getUint32(68, true),
    logOffset: Number(dv.getBigUint64(72, true)),
  };
}

export function buildHeader(h: Omit<Header, 'at'>, crc: (b: Uint8Array) => number): Uint8Array {
  const b = new Uint8Array(HEADER_SIZE);
  const dv = new DataView(b.buffer);
  b.set(Buffer.from('head', 'latin1'), 0);
  dv.setBigUint64(8, h.sequence, true);
  b.set(h.fileWriteGuid, 16);
  b.set(h.dataWriteGuid, 32);
  b.set(h.logGuid, 48);
  dv.setUint16(64, h.logVersion, true);
  dv.setUint16(66, h.version, true);
  dv.setUint32(68, h.logLength, true);
  dv.setBigUint64(72, BigInt(h.logOffset), true);
  dv.setUint32(4, crc(b), true);
  return b;
}

/** A BAT entry: state in bits 0-2, file offset in MiB in bits 20-63. */
export function batEntry(dv: DataView, i: number): { state: number; offset: number } {
  const lo = dv.getUint32(i * 8, true);
  const hi = dv.getUint32(i * 8 + 4, true);
  return { state: lo & 7, offset: (hi * 4096 + (lo >>> 20)) * MiB };
}

export function setBatEntry(dv: DataView, i: number, state: number, offset: number): void {
  const mb = offset / MiB;
  dv.setUint32(i * 8, (state | ((mb % 4096) << 20)) >>> 0, true);
  dv.setUint32(i * 8 + 4, Math.floor(mb / 4096), true);
}

/** Payload blocks per sector-bitmap block. */
export function chunkRatio(logicalSectorSize: number, blockSize: number): number {
  return (2 ** 23 * logicalSectorSize) / blockSize;
}

/** Number of BAT entries for a disk (payload entries interleaved with sector-bitmap entries). */
export function batEntries(virtualSize: number, blockSize: number, logicalSectorSize: number, hasParent: boolean): number {
  const cr = chunkRatio(logicalSectorSize, blockSize);
  const payload = Math.ceil(virtualSize / blockSize);
  if (hasParent) return Math.ceil(payload / cr) * (cr + 1);
  return payload === 0 ? 0 : payload + Math.floor((payload - 1) / cr);
}

/** qemu's automatic block size: 8 MiB, 32 MiB above 1 TiB, 64 MiB above 32 TiB. */
export function defaultBlockSize(virtualSize: number): number {
  const TiB = 1024 * 1024 * MiB;
  return virtualSize > 32 * TiB ? 64 * MiB : virtualSize > TiB ? 32 * MiB : 8 * MiB;
}
