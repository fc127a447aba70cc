// Partition tables inside a disk image: MBR (with the extended/logical EBR chain) and
// GPT (primary header, falling back to the backup one, CRC32-checked). Everything is
// read through the BlockDevice, so it works on any image format.
//
// Untrusted input: every LBA is bounds-checked against the disk, EBR chains are
// loop- and length-limited, and GPT entry arrays are size-capped before allocation.

import { crc32 } from '@node-rs/crc32';
import type { BlockDevice, DeviceInfo, Extent } from '../engine/block/device.js';
import { CorruptImage, InvalidArgument, UnsupportedFeature } from '../engine/errors.js';

export interface Partition {
  /** 1-based; MBR logical partitions start at 5 like Linux numbers them. */
  number: number;
  /** Byte offset of the partition in the disk. */
  offset: number;
  /** Byte length. */
  size: number;
  /** MBR: the type byte as "0x83"; GPT: the type GUID (upper case). */
  type: string;
  /** A short human name for well-known types ("Linux filesystem", "EFI System", ...). */
  typeName: string;
  /** GPT partition name. */
  name?: string;
  /** GPT unique partition GUID. */
  guid?: string;
  /** MBR: the active flag. */
  bootable?: boolean;
  /** MBR: inside the extended partition. */
  logical?: boolean;
}

export interface PartitionTable {
  type: 'mbr' | 'gpt' | 'none';
  sectorSize: number;
  /** GPT disk GUID, or the MBR disk signature as 8 hex digits. */
  diskId?: string;
  partitions: Partition[];
  /** Non-fatal findings (backup GPT header used, bad backup, ...). */
  warnings: string[];
}

const MBR_EXTENDED = new Set([0x05, 0x0f, 0x85]);
const MBR_GPT_PROTECTIVE = 0xee;
/** More logical partitions than this is not a real disk (Linux caps far lower in practice). */
const MAX_LOGICAL = 256;
/** 128 entries of 128 bytes is the norm; refuse arrays beyond 1 MiB. */
const MAX_GPT_ARRAY = 1024 * 1024;

const MBR_TYPES: Record<number, string> = {
  0x07: 'HPFS/NTFS/exFAT', 0x0b: 'W95 FAT32', 0x0c: 'W95 FAT32 (LBA)', 0x0e: 'W95 FAT16 (LBA)',
  0x05: 'Extended', 0x0f: 'W95 Extended (LBA)', 0x85: 'Linux extended',
  0x82: 'Linux swap', 0x83: 'Linux', 0x8e: 'Linux LVM', 0xef: 'EFI System', 0xfd: 'Linux raid autodetect',
  0xee: 'GPT protective',
};

const GPT_TYPES: Record<string, string> = {
  '0FC63DAF-8483-4772-8E79-3D69C8E47DE4': 'Linux filesystem',
  'C12A7328-F81F-11D2-BA4B-00A0C93EC93B': 'EFI System',
  'E6D6D379-F507-44C2-A23C-238F2A3DF928': 'Linux LVM',
  '21686148-6449-6E6F-744E-656564454649': 'BIOS boot',
  '0657FD6D-A4AB-43C4-84E5-0933C84B4F4F': 'Linux swap',
  '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709': 'Linux root (x86-64)',
  '44479540-F297-41B2-9AF7-D131D5F0458A': 'Linux root (x86)',
  'B921B045-1DF0-41C3-AF44-4C6F280D3FAE': 'Linux root (ARM-64)',
  'BC13C2FF-59E6-4262-A352-B275FD6F7172': 'Linux extended boot',
  'A19D880F-05FC-4D3B-A006-743F0F84911E': 'Linux RAID',
  'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7': 'Microsoft basic data',
  'E3C9E316-0B5C-4DB8-817D-F92DF00215AE': 'Microsoft reserved',
  'DE94BBA4-06D1-4D40-A16A-BFD50179D6AC': 'Windows recovery',
};

/**
 * Whether a partition is worth probing for a filesystem. Types lie (old tools mark Linux
 * filesystems as "Microsoft basic data" or leave unknown GUIDs), and the ext magic check
 * is cheap and reliable, so only containers, swap and firmware areas are skipped.
 */
export function mayHoldLinuxFs(p: Partition): boolean {
  if (['0x05', '0x0f', '0x85', '0x82', '0xee'].includes(p.type)) return false;
  return !/swap|BIOS boot|Extended/.test(p.typeName);
}

/** Formats a GUID stored in the mixed-endian EFI layout. */
export function guidToString(b: Uint8Array, off = 0): string {
  const h = (i: number) => b[off + i]!.toString(16).padStart(2, '0');
  const s = [3, 2, 1, 0].map(h).join('') + '-' + [5, 4].map(h).join('') + '-' + [7, 6].map(h).join('') + '-'
    + [8, 9].map(h).join('') + '-' + [10, 11, 12, 13, 14, 15].map(h).join('');
  return s.toUpperCase();
}

async function readAt(dev: BlockDevice, offset: number, length: number): Promise<Uint8Array> {
  if (offset < 0 || length < 0 || offset + length > dev.virtualSize) {
    throw new CorruptImage(`partition table points outside the disk (bytes ${offset}..${offset + length} of ${dev.virtualSize})`, { file: dev.name, offset });
  }
  const buf = new Uint8Array(length);
  await dev.read(buf, offset);
  return buf;
}

function isExtSuperblock(sector2: Uint8Array): boolean {
  // ext2/3/4 superblock at byte 1024, s_magic at +56.
  return sector2.length >= 58 && sector2[56] === 0x53 && sector2[57] === 0xef;
}

/** Reads the partition table of a disk. A disk without one reports type 'none'. */
export async function readPartitionTable(dev: BlockDevice): Promise<PartitionTable> {
  if (dev.virtualSize < 512) return { type: 'none', sectorSize: 512, partitions: [], warnings: [] };
  const head = await readAt(dev, 0, Math.min(dev.virtualSize, 2048));
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const hasMbrSig = head[510] === 0x55 && head[511] === 0xaa;
  // A whole-disk filesystem (no table): superblock at 1024 and no boot signature.
  if (!hasMbrSig) return { type: 'none', sectorSize: 512, partitions: [], warnings: [] };

  const entries = [0, 1, 2, 3].map((i) => {
    const o = 446 + i * 16;
    return { status: head[o]!, type: head[o + 4]!, start: dv.getUint32(o + 8, true), count: dv.getUint32(o + 12, true) };
  });
  if (entries.some((e) => e.status !== 0 && e.status !== 0x80)) {
    // Not an MBR (e.g. a FAT boot sector or a filesystem that happens to end in 55AA).
    // A boot sector of a whole-disk filesystem (FAT, NTFS) also ends in 55AA: no table.
    const warn = isExtSuperblock(head.subarray(1024)) ? [] : ['sector 0 ends in 55AA but its partition entries are invalid: not an MBR'];
    return { type: 'none', sectorSize: 512, partitions: [], warnings: warn };
  }
  if (entries.some((e) => e.type === MBR_GPT_PROTECTIVE)) {
    for (const sectorSize of [512, 4096]) {
      if (dev.virtualSize < sectorSize * 2 + 92) continue;
      const h = await readAt(dev, sectorSize, 8);
      if (new TextDecoder().decode(h) === 'EFI PART') return readGpt(dev, sectorSize);
    }
    // Primary header gone: the backup one sits in the last LBA.
    for (const sectorSize of [512, 4096]) {
      const last = Math.floor(dev.virtualSize / sectorSize) - 1;
      if (last < 2) continue;
      const h = await readAt(dev, last * sectorSize, 8);
      if (new TextDecoder().decode(h) === 'EFI PART') return readGpt(dev, sectorSize);
    }
    throw new CorruptImage('protective MBR but no GPT header found (primary nor backup)', { file: dev.name, offset: 512 });
  }
  return readMbr(dev, head, entries);
}

async function readMbr(dev: BlockDevice, head: Uint8Array, entries: Array<{ status: number; type: number; start: number; count: number }>): Promise<PartitionTable> {
  const sector = 512;
  const totalSectors = Math.floor(dev.virtualSize / sector);
  const warnings: string[] = [];
  const parts: Partition[] = [];
  const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const diskId = dv.getUint32(440, true).toString(16).padStart(8, '0');
  const check = (what: string, start: number, count: number, at: number) => {
    if (start + count > totalSectors) {
      throw new CorruptImage(`${what} (sectors ${start}..${start + count - 1}) extends past the end of the disk (${totalSectors} sectors)`, { file: dev.name, offset: at });
    }
  };
  let extended: { start: number; count: number } | null = null;
  entries.forEach((e, i) => {
    if (e.type === 0 || e.count === 0) return;
    check(`MBR partition ${i + 1}`, e.start, e.count, 446 + i * 16);
    if (MBR_EXTENDED.has(e.type)) {
      if (extended) throw new CorruptImage('MBR has more than one extended partition', { file: dev.name, offset: 446 + i * 16 });
      extended = { start: e.start, count: e.count };
    }
    parts.push(mbrPartition(i + 1, e, 0, sector, false));
  });
  if (extended) parts.push(...await readEbrChain(dev, extended, totalSectors));
  return { type: 'mbr', sectorSize: sector, diskId, partitions: parts, warnings };
}

function mbrPartition(number: number, e: { status: number; type: number; start: number; count: number }, base: number, sector: number, logical: boolean): Partition {
  const type = '0x' + e.type.toString(16).padStart(2, '0');
  return {
    number,
    offset: (base + e.start) * sector,
    size: e.count * sector,
    type,
    typeName: MBR_TYPES[e.type] ?? 'unknown',
    bootable: e.status === 0x80,
    ...(logical ? { logical: true } : {}),
  };
}

/**
 * Walks the EBR chain: each EBR's first entry is a logical partition relative to that
 * EBR, its second entry links the next EBR relative to the extended partition's start.
 */
async function readEbrChain(dev: BlockDevice, ext: { start: number; count: number }, totalSectors: number): Promise<Partition[]> {
  const out: Partition[] = [];
  const seen = new Set<number>();
  let ebr = ext.start;
  let number = 5;
  while (true) {
    if (seen.has(ebr)) throw new CorruptImage(`EBR chain loops back to sector ${ebr}`, { file: dev.name, offset: ebr * 512 });
    if (out.length >= MAX_LOGICAL) throw new CorruptImage(`EBR chain longer than ${MAX_LOGICAL} logical partitions`, { file: dev.name, offset: ebr * 512 });
    if (ebr < ext.start || ebr >= ext.start + ext.count || ebr >= totalSectors) {
      throw new CorruptImage(`EBR at sector ${ebr} lies outside the extended partition (sectors ${ext.start}..${ext.start + ext.count - 1})`, { file: dev.name, offset: ebr * 512 });
    }
    seen.add(ebr);
    const b = await readAt(dev, ebr * 512, 512);
    if (b[510] !== 0x55 || b[511] !== 0xaa) throw new CorruptImage(`EBR at sector ${ebr} has no boot signature`, { file: dev.name, offset: ebr * 512 + 510 });
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const e1 = { status: b[446]!, type: b[450]!, start: dv.getUint32(454, true), count: dv.getUint32(458, true) };
    const e2 = { type: b[466]!, start: dv.getUint32(470, true), count: dv.getUint32(474, true) };
    if (e1.type !== 0 && e1.count !== 0) {
      const s = ebr + e1.start;
      if (s + e1.count > ext.start + ext.count) {
        throw new CorruptImage(`logical partition ${number} (sectors ${s}..${s + e1.count - 1}) extends past its extended partition`, { file: dev.name, offset: ebr * 512 + 446 });
      }
      out.push(mbrPartition(number++, e1, ebr, 512, true));
    }
    if (e2.type === 0 || e2.count === 0) break;
    if (!MBR_EXTENDED.has(e2.type)) throw new CorruptImage(`EBR at sector ${ebr} links to a non-extended entry (type 0x${e2.type.toString(16)})`, { file: dev.name, offset: ebr * 512 + 462 });
    ebr = ext.start + e2.start;
  }
  return out;
}

interface GptHeader {
  myLba: number;
  alternateLba: number;
  firstUsable: number;
  lastUsable: number;
  diskGuid: string;
  entriesLba: number;
  numEntries: number;
  entrySize: number;
  entriesCrc: number;
}

function u64(dv: DataView, o: number): number {
  const v = dv.getBigUint64(o, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  return Number(v);
}

/** Parses and verifies one GPT header at `lba`; returns an error string when it is bad. */
async function parseGptHeader(dev: BlockDevice, lba: number, sectorSize: number): Promise<GptHeader | string> {
  const totalLbas = Math.floor(dev.virtualSize / sectorSize);
  if (lba < 1 || lba >= totalLbas) return `header LBA ${lba} outside the disk`;
  const b = await readAt(dev, lba * sectorSize, sectorSize);
  if (new TextDecoder().decode(b.subarray(0, 8)) !== 'EFI PART') return `no "EFI PART" signature at LBA ${lba}`;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const hdrSize = dv.getUint32(12, true);
  if (hdrSize < 92 || hdrSize > sectorSize) return `header size ${hdrSize} out of range`;
  const stored = dv.getUint32(16, true);
  const copy = b.slice(0, hdrSize);
  copy.fill(0, 16, 20);
  if ((crc32(copy) >>> 0) !== stored) return `header CRC32 mismatch at LBA ${lba}`;
  const h: GptHeader = {
    myLba: u64(dv, 24), alternateLba: u64(dv, 32), firstUsable: u64(dv, 40), lastUsable: u64(dv, 48),
    diskGuid: guidToString(b, 56), entriesLba: u64(dv, 72), numEntries: dv.getUint32(80, true),
    entrySize: dv.getUint32(84, true), entriesCrc: dv.getUint32(88, true),
  };
  if (h.myLba !== lba) return `header at LBA ${lba} says it is at LBA ${h.myLba}`;
  if (h.entrySize < 128 || h.entrySize % 8 !== 0) return `partition entry size ${h.entrySize} invalid`;
  if (h.numEntries * h.entrySize > MAX_GPT_ARRAY) return `partition entry array of ${h.numEntries}x${h.entrySize} bytes is too large`;
  if (h.firstUsable > h.lastUsable || h.lastUsable >= totalLbas) return `usable LBA range ${h.firstUsable}..${h.lastUsable} invalid for a disk of ${totalLbas} sectors`;
  const arrayLbas = Math.ceil(h.numEntries * h.entrySize / sectorSize);
  if (h.entriesLba < 2 || h.entriesLba + arrayLbas > totalLbas) return `partition entry array at LBA ${h.entriesLba} outside the disk`;
  return h;
}

async function readGpt(dev: BlockDevice, sectorSize: number): Promise<PartitionTable> {
  const warnings: string[] = [];
  const totalLbas = Math.floor(dev.virtualSize / sectorSize);
  const tryHeader = async (lba: number): Promise<{ h: GptHeader; entries: Uint8Array } | string> => {
    const h = await parseGptHeader(dev, lba, sectorSize);
    if (typeof h === 'string') return h;
    const entries = await readAt(dev, h.entriesLba * sectorSize, h.numEntries * h.entrySize);
    if ((crc32(entries) >>> 0) !== h.entriesCrc) return `partition entry array CRC32 mismatch (header at LBA ${lba})`;
    return { h, entries };
  };
  const primary = await tryHeader(1);
  let chosen: { h: GptHeader; entries: Uint8Array };
  if (typeof primary === 'string') {
    const backup = await tryHeader(totalLbas - 1);
    if (typeof backup === 'string') {
      throw new CorruptImage(`GPT is damaged: primary: ${primary}; backup: ${backup}`, { file: dev.name, offset: sectorSize });
    }
    warnings.push(`primary GPT is bad (${primary}); using the backup header at LBA ${totalLbas - 1}`);
    chosen = backup;
  } else {
    chosen = primary;
    const alt = primary.h.alternateLba;
    const backup = alt > 1 && alt < totalLbas ? await tryHeader(alt) : `alternate LBA ${alt} outside the disk`;
    if (typeof backup === 'string') warnings.push(`backup GPT: ${backup}`);
    else if (backup.h.entriesCrc !== primary.h.entriesCrc) warnings.push('backup GPT partition entries differ from the primary ones');
    if (alt !== totalLbas - 1) warnings.push(`backup GPT header is at LBA ${alt}, not at the last LBA ${totalLbas - 1} (disk was resized?)`);
  }
  const { h, entries } = chosen;
  const dv = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  const parts: Partition[] = [];
  for (let i = 0; i < h.numEntries; i++) {
    const o = i * h.entrySize;
    if (entries.subarray(o, o + 16).every((x) => x === 0)) continue;
    const first = u64(dv, o + 32);
    const last = u64(dv, o + 40);
    if (first > last || first < h.firstUsable || last > h.lastUsable) {
      throw new CorruptImage(`GPT partition ${i + 1} (LBA ${first}..${last}) lies outside the usable range ${h.firstUsable}..${h.lastUsable}`, { file: dev.name, offset: h.entriesLba * sectorSize + o });
    }
    const type = guidToString(entries, o);
    let name = '';
    for (let j = 0; j < 72; j += 2) {
      const c = dv.getUint16(o + 56 + j, true);
      if (c === 0) break;
      name += String.fromCharCode(c);
    }
    parts.push({
      number: i + 1, offset: first * sectorSize, size: (last - first + 1) * sectorSize,
      type, typeName: GPT_TYPES[type] ?? 'unknown', name, guid: guidToString(entries, o + 16),
    });
  }
  return { type: 'gpt', sectorSize, diskId: h.diskGuid, partitions: parts, warnings };
}

/**
 * A byte range of another device, as a BlockDevice of its own (a partition). Closing
 * it does not close the parent.
 */
export class SubRangeDevice implements BlockDevice {
  readonly format: string;
  readonly name: string;
  readonly backing = null;
  readonly write?: (buf: Uint8Array, offset: number) => Promise<void>;

  constructor(readonly parent: BlockDevice, readonly start: number, readonly virtualSize: number, label: string) {
    if (start < 0 || virtualSize < 0 || start + virtualSize > parent.virtualSize) {
      throw new InvalidArgument(`range ${start}+${virtualSize} is outside the disk (${parent.virtualSize} bytes)`, { file: parent.name });
    }
    this.format = parent.format;
    this.name = `${parent.name}:${label}`;
    if (parent.write) {
      const w = parent.write.bind(parent);
      this.write = async (buf, offset) => {
        this.bounds(offset, buf.length, 'write');
        await w(buf, this.start + offset);
      };
    }
  }

  private bounds(offset: number, length: number, what: string): void {
    if (offset < 0 || offset + length > this.virtualSize) {
      throw new InvalidArgument(`${what} of ${length} bytes at ${offset} is outside the partition (${this.virtualSize} bytes)`, { file: this.name, offset });
    }
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    this.bounds(offset, buf.length, 'read');
    await this.parent.read(buf, this.start + offset);
  }

  async *extents(offset: number, length: number): AsyncIterable<Extent> {
    const end = Math.min(offset + length, this.virtualSize);
    if (offset >= end) return;
    for await (const e of this.parent.extents(this.start + offset, end - offset)) {
      yield { ...e, offset: e.offset - this.start };
    }
  }

  describe(): DeviceInfo { return {}; }
  async flush(): Promise<void> { await this.parent.flush?.(); }
  async close(): Promise<void> { /* the parent owns the file */ }
}

/** The partition numbered `n` as a device. */
export function partitionDevice(dev: BlockDevice, table: PartitionTable, n: number): SubRangeDevice {
  const p = table.partitions.find((x) => x.number === n);
  if (!p) throw new InvalidArgument(`no partition ${n} (have: ${table.partitions.map((x) => x.number).join(', ') || 'none'})`, { file: dev.name });
  if (MBR_EXTENDED.has(parseInt(p.type, 16)) && p.type.startsWith('0x')) {
    throw new UnsupportedFeature(`partition ${n} is an extended partition container`, { file: dev.name });
  }
  return new SubRangeDevice(dev, p.offset, p.size, `p${n}`);
}
