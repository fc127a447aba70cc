// Partition tables of raw images (Glance's "gpt" check): a protective MBR must
// describe exactly one GPT partition, the GPT header's fields must be sane for the disk
// it sits on, and MBR partitions must lie on the disk.
import { crc32 } from '@node-rs/crc32';
import type { Report } from '../types.js';
import { type ImageView, bytesEq, has, u32le, u64le } from '../view.js';

const MBR_SIG = 510;
const PTE = 446;
const PROTECTIVE = 0xee;

export interface MbrEntry { boot: number; type: number; start: number; sectors: number }

export function mbrEntries(b: Uint8Array): MbrEntry[] | null {
  if (!has(b, 0, 512) || b[MBR_SIG] !== 0x55 || b[MBR_SIG + 1] !== 0xaa) return null;
  const out: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const e = PTE + i * 16;
    out.push({ boot: b[e]!, type: b[e + 4]!, start: u32le(b, e + 8), sectors: u32le(b, e + 12) });
  }
  return out;
}

/** True when sector 0 holds something that is plausibly a partition table (not a filesystem boot sector). */
export function plausiblePartitionTable(b: Uint8Array): boolean {
  const e = mbrEntries(b);
  if (!e) return false;
  if (e.some((x) => x.type === PROTECTIVE)) return true;
  return e.every((x) => x.boot === 0 || x.boot === 0x80) && e.some((x) => x.type !== 0 && x.sectors > 0);
}

/** Checks the partition table of an image whose content is raw disk. */
export function checkPartitions(v: ImageView, r: Report): void {
  const e = mbrEntries(v.head);
  if (!e) return;
  const protective = e.filter((x) => x.type === PROTECTIVE);
  const sectors = Math.floor(v.size / 512);
  if (protective.length === 0) {
    // Boot code of a partitionless filesystem also ends in 55 AA: only judge real tables.
    if (!e.every((x) => x.boot === 0 || x.boot === 0x80)) return;
    for (const [i, x] of e.entries()) {
      if (x.type === 0) continue;
      if (x.sectors === 0 || x.start === 0) r.unsafe('gpt-mbr', `MBR partition ${i + 1} has start ${x.start}, ${x.sectors} sectors`, PTE + i * 16);
      else if (x.start + x.sectors > sectors && x.type !== 0x05 && x.type !== 0x0f) {
        r.unsafe('gpt-mbr', `MBR partition ${i + 1} (sectors ${x.start}..${x.start + x.sectors - 1}) extends past the end of the ${sectors}-sector disk`, PTE + i * 16);
      }
    }
    return;
  }
  for (const [i, x] of e.entries()) {
    if (x.boot !== 0 && x.boot !== 0x80) r.unsafe('gpt-mbr', `protective MBR entry ${i + 1} has boot flag 0x${x.boot.toString(16)}`, PTE + i * 16);
  }
  const used = e.filter((x) => x.type !== 0);
  if (used.length !== 1) r.unsafe('gpt-mbr', `a protective MBR must define exactly one partition; this one defines ${used.length}`, PTE);
  if (protective[0]!.start !== 1) r.unsafe('gpt-mbr', `the protective partition starts at sector ${protective[0]!.start}, not 1`, PTE);
  // GPT header at LBA 1 (512-byte sectors) or at 4096 (4 KiB sectors).
  for (const ss of [512, 4096]) {
    if (bytesEq(v.head, ss, 'EFI PART')) { checkGpt(v, r, ss); return; }
  }
  r.unsafe('gpt-mbr', 'a protective MBR without a GPT header at LBA 1');
}

function checkGpt(v: ImageView, r: Report, ss: number): void {
  const b = v.head;
  const h = ss;
  if (!has(b, h, 92)) { r.unsafe('gpt-mbr', 'GPT header cut short', h); return; }
  const lbas = Math.floor(v.size / ss);
  const hdrSize = u32le(b, h + 12);
  const myLba = u64le(b, h + 24);
  const altLba = u64le(b, h + 32);
  const firstUsable = u64le(b, h + 40);
  const lastUsable = u64le(b, h + 48);
  const entriesLba = u64le(b, h + 72);
  const count = u32le(b, h + 80);
  const entrySize = u32le(b, h + 84);
  const bad = (msg: string, off?: number) => r.unsafe('gpt-mbr', `GPT header: ${msg}`, off);
  if (u32le(b, h + 8) !== 0x00010000) bad(`revision 0x${u32le(b, h + 8).toString(16)}`, h + 8);
  if (hdrSize < 92 || hdrSize > ss) { bad(`header size ${hdrSize}`, h + 12); return; }
  const copy = Buffer.from(b.subarray(h, h + hdrSize));
  const stored = u32le(copy, 16);
  copy.fill(0, 16, 20);
  if ((crc32(copy) >>> 0) !== stored) bad('checksum mismatch', h + 16);
  if (myLba !== 1) bad(`my_lba ${myLba} is not 1`, h + 24);
  if (altLba === 0 || altLba >= lbas) bad(`backup header LBA ${altLba} is not on the ${lbas}-sector disk`, h + 32);
  if (firstUsable > lastUsable || lastUsable >= lbas) bad(`usable LBAs ${firstUsable}..${lastUsable} do not fit the ${lbas}-sector disk`, h + 40);
  if (entrySize < 128 || entrySize > 4096 || (entrySize & (entrySize - 1)) !== 0) { bad(`entry size ${entrySize}`, h + 84); return; }
  if (count === 0 || count > 65536) { bad(`${count} partition entries`, h + 80); return; }
  const tableBytes = count * entrySize;
  if (entriesLba < 2 || entriesLba >= lbas || entriesLba * ss + tableBytes > v.size) { bad(`partition entries at LBA ${entriesLba} (${tableBytes} bytes) are not on the disk`, h + 72); return; }
  if (entriesLba * ss + tableBytes > firstUsable * ss && firstUsable > 0 && entriesLba < firstUsable) bad('partition entries overlap the usable area', h + 72);
  const t = has(b, entriesLba * ss, tableBytes) ? b.subarray(entriesLba * ss, entriesLba * ss + tableBytes) : null;
  if (!t) return;
  if ((crc32(t) >>> 0) !== u32le(b, h + 88)) bad('partition entry array checksum mismatch', h + 88);
  for (let i = 0; i < count; i++) {
    const e = i * entrySize;
    if (t.subarray(e, e + 16).every((x) => x === 0)) continue;
    const first = u64le(t, e + 32);
    const last = u64le(t, e + 40);
    if (first > last || first < firstUsable || last > lastUsable) {
      r.unsafe('gpt-mbr', `GPT partition ${i + 1} (LBAs ${first}..${last}) lies outside the usable area ${firstUsable}..${lastUsable}`, entriesLba * ss + e);
    }
  }
}
