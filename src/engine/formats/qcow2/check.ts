// Consistency check (qemu-img check semantics): rebuild every reference count from the
// L1/L2 tables of the active image and all snapshots plus the metadata, compare with the
// refcounts on disk, verify the COPIED flags, and optionally repair.

import type { CheckReport } from '../../block/device.js';
import { UnsupportedFeature } from '../../errors.js';
import type { Qcow2Device } from './device.js';
import type { Writer } from './write.js';
import { HI_COMPRESSED, HI_COPIED, INCOMPAT_DATA_FILE, TWO32, EXT_BITMAPS, AUTOCLEAR_BITMAPS } from './constants.js';
import { compressedDesc, l1EntryOffset } from './map.js';
import { getRefcount, refcountMax } from './refcount.js';

/** Refuse checking files whose cluster count would need an absurd amount of memory. */
const MAX_CHECK_CLUSTERS = 2 ** 27;

export async function checkImage(dev: Qcow2Device, repair?: 'leaks' | 'all', writer?: Writer): Promise<CheckReport> {
  const first = await runCheck(dev, repair, writer);
  if (!repair || (first.leaksFixed ?? 0) + (first.corruptionsFixed ?? 0) === 0) return first;
  // Like qemu: report the state after repair, with what was fixed.
  const after = await runCheck(dev, undefined);
  after.leaksFixed = first.leaksFixed;
  after.corruptionsFixed = first.corruptionsFixed;
  after.messages = [...first.messages, ...after.messages.filter((m) => !first.messages.includes(m))];
  return after;
}

async function runCheck(dev: Qcow2Device, repair?: 'leaks' | 'all', writer?: Writer): Promise<CheckReport> {
  const h = dev.h, cs = h.clusterSize, src = dev.src, file = dev.name;
  const fileSize = src.size;
  const nb = Math.ceil(fileSize / cs);
  if (nb > MAX_CHECK_CLUSTERS) throw new UnsupportedFeature(`file has ${nb} clusters; checking more than ${MAX_CHECK_CLUSTERS} is not supported`, { file });
  const externalData = (h.incompatible & INCOMPAT_DATA_FILE) !== 0;
  const computed = new Uint32Array(nb);
  const messages: string[] = [];
  const r: CheckReport = {
    filename: file, format: 'qcow2', checkErrors: 0, corruptions: 0, leaks: 0,
    totalClusters: Math.ceil(h.size / cs), allocatedClusters: 0, fragmentedClusters: 0, compressedClusters: 0, messages,
  };
  const corrupt = (msg: string) => { r.corruptions++; messages.push(`ERROR ${msg}`); };
  const inc = (off: number, len: number, what: string): void => {
    if (len <= 0) return;
    const last = Math.floor((off + len - 1) / cs);
    for (let c = Math.floor(off / cs); c <= last; c++) {
      if (c >= nb) { corrupt(`${what} at offset ${off}: cluster ${c} is outside the image file`); return; }
      computed[c]!++;
    }
  };

  inc(0, cs, 'header');
  const l2buf = new Uint8Array(cs);
  const l2dv = new DataView(l2buf.buffer);
  const eb = dev.map.entryBytes, entries = dev.map.l2Entries;
  const copiedChecks: Array<{ l1i: number; l2: number }> = [];
  let nextContiguous = 0;

  const walkL1 = async (l1: Uint8Array, active: boolean, what: string): Promise<void> => {
    const dv = new DataView(l1.buffer, l1.byteOffset, l1.byteLength);
    for (let i = 0; i < l1.length / 8; i++) {
      const off = l1EntryOffset(dv.getUint32(i * 8), dv.getUint32(i * 8 + 4));
      if (off === 0) continue;
      if (off % cs !== 0) { corrupt(`${what} L1 entry ${i}: L2 table offset ${off} is not cluster aligned`); continue; }
      if (off + cs > fileSize) { corrupt(`${what} L1 entry ${i}: L2 table at ${off} is outside the image file`); continue; }
      inc(off, cs, 'L2 table');
      if (active) copiedChecks.push({ l1i: i, l2: off });
      await src.read(l2buf, off);
      for (let k = 0; k < entries; k++) {
        const hi = l2dv.getUint32(k * eb), lo = l2dv.getUint32(k * eb + 4);
        if (hi & HI_COMPRESSED) {
          const { coff, sectors } = compressedDesc(hi, lo, h.clusterBits);
          inc(coff - (coff % 512), sectors * 512, 'compressed cluster');
          if (active) { r.allocatedClusters!++; r.compressedClusters!++; r.fragmentedClusters!++; }
          continue;
        }
        const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
        if (host === 0) continue;
        if (host % cs !== 0) { corrupt(`L2 entry at ${off + k * eb}: cluster offset ${host} is not properly aligned`); continue; }
        if (!externalData) inc(host, cs, 'data cluster');
        if (active) {
          r.allocatedClusters!++;
          if (nextContiguous && host !== nextContiguous) r.fragmentedClusters!++;
          nextContiguous = host + cs;
        }
      }
    }
  };

  inc(h.l1TableOffset, h.l1Size * 8, 'L1 table');
  await walkL1(dev.map.l1, true, 'active');
  for (const s of dev.snapshotEntries) {
    inc(s.l1TableOffset, s.l1Size * 8, `snapshot ${s.id} L1 table`);
    const l1 = new Uint8Array(s.l1Size * 8);
    await src.read(l1, s.l1TableOffset);
    await walkL1(l1, false, `snapshot ${s.id}`);
  }
  inc(h.snapshotsOffset, dev.snapshotTableBytes, 'snapshot table');
  await countBitmaps(dev, inc, corrupt);

  // The refcount table and blocks: reference them, and load the stored refcounts.
  const order = h.refcountOrder, perBlock = cs * 8 / (1 << order);
  const table = new Uint8Array(h.refcountTableClusters * cs);
  await src.read(table, h.refcountTableOffset);
  inc(h.refcountTableOffset, table.length, 'refcount table');
  const tdv = new DataView(table.buffer);
  const ondisk = new Uint32Array(nb);
  const blk = new Uint8Array(cs), bdv = new DataView(blk.buffer);
  for (let ti = 0; ti < table.length / 8; ti++) {
    const off = tdv.getUint32(ti * 8) * TWO32 + ((tdv.getUint32(ti * 8 + 4) & 0xfffffe00) >>> 0);
    if (off === 0) continue;
    if (off % cs !== 0) { corrupt(`refcount block ${ti} is not cluster aligned; refcount table entry corrupted`); continue; }
    if (off + cs > fileSize) { corrupt(`refcount block ${ti} is outside image`); continue; }
    inc(off, cs, 'refcount block');
    await src.read(blk, off);
    const base = ti * perBlock;
    const n = Math.min(perBlock, nb - base);
    for (let i = 0; i < n; i++) ondisk[base + i] = Math.min(0xffffffff, getRefcount(blk, bdv, i, order));
  }

  const io = repair ? writer ?? await dev.updater() : undefined;
  const max = refcountMax(order);
  let highest = -1;
  let leaksFixed = 0, corruptionsFixed = 0;
  for (let c = 0; c < nb; c++) {
    const want = computed[c]!, have = ondisk[c]!;
    if (want > 0 || have > 0) highest = c;
    if (want === have) continue;
    if (want > have) {
      corrupt(`cluster ${c} refcount=${have} reference=${want}`);
      if (want > max) messages.push(`ERROR cluster ${c} has more references (${want}) than refcount_bits can count`);
      if (repair === 'all' && want <= max) { await io!.setRefcount(c, want); ondisk[c] = want; corruptionsFixed++; }
    } else {
      r.leaks++;
      messages.push(`Leaked cluster ${c} refcount=${have} reference=${want}`);
      if (repair) { await io!.setRefcount(c, want); ondisk[c] = want; leaksFixed++; }
    }
  }

  // COPIED flags of the active tables must say "refcount is exactly one".
  if (!externalData) {
    const l1dv = dev.map.l1Dv();
    for (const { l1i, l2 } of copiedChecks) {
      const e = l1dv.getUint32(l1i * 8);
      const ref = ondisk[l2 / cs] ?? 0;
      if (((e & HI_COPIED) !== 0) !== (ref === 1)) {
        corrupt(`OFLAG_COPIED L2 cluster: l1_index=${l1i} l1_entry=${hex64(e, l1dv.getUint32(l1i * 8 + 4))} refcount=${ref}`);
        if (repair === 'all') { await io!.fixCopiedL1(l1i, ref === 1); corruptionsFixed++; }
      }
      await src.read(l2buf, l2);
      for (let k = 0; k < entries; k++) {
        const hi = l2dv.getUint32(k * eb), lo = l2dv.getUint32(k * eb + 4);
        if (hi & HI_COMPRESSED) continue;
        const host = (hi & 0x00ffffff) * TWO32 + ((lo & 0xfffffe00) >>> 0);
        if (host === 0 || host % cs !== 0 || host >= fileSize) continue;
        const ref2 = ondisk[host / cs]!;
        if (((hi & HI_COPIED) !== 0) !== (ref2 === 1)) {
          corrupt(`OFLAG_COPIED data cluster: l2_entry=${hex64(hi, lo)} refcount=${ref2}`);
          if (repair === 'all') { await io!.fixCopiedL2(l2, k, ref2 === 1); corruptionsFixed++; }
        }
      }
    }
  }
  if (io && (leaksFixed || corruptionsFixed)) await io.clearDirty();
  r.imageEndOffset = (highest + 1) * cs;
  if (repair) { r.leaksFixed = leaksFixed; r.corruptionsFixed = corruptionsFixed; }
  return r;
}

/** qemu's cap on the bitmap directory. */
const MAX_BITMAP_DIRECTORY = 64 * 1024 * 1024;

/** References held by persistent dirty bitmaps: the directory, bitmap tables and their data clusters. */
async function countBitmaps(dev: Qcow2Device, inc: (off: number, len: number, what: string) => void, corrupt: (msg: string) => void): Promise<void> {
  const ext = dev.h.otherExtensions.find((e) => e.type === EXT_BITMAPS);
  // Without the auto-clear bit the bitmaps are stale and qemu does not count them either.
  if (!ext || ext.data.length < 24 || !(dev.h.autoclear & AUTOCLEAR_BITMAPS)) return;
  const cs = dev.h.clusterSize, size = dev.src.size;
  const x = new DataView(ext.data.buffer, ext.data.byteOffset, ext.data.byteLength);
  const nb = x.getUint32(0);
  const dirSize = x.getUint32(8) * TWO32 + x.getUint32(12);
  const dirOff = x.getUint32(16) * TWO32 + x.getUint32(20);
  if (dirSize > MAX_BITMAP_DIRECTORY || dirOff % cs !== 0 || dirOff + dirSize > size) { corrupt('bitmap directory is invalid or outside the image file'); return; }
  inc(dirOff, dirSize, 'bitmap directory');
  const dir = new Uint8Array(dirSize);
  await dev.src.read(dir, dirOff);
  const dv = new DataView(dir.buffer);
  let p = 0;
  for (let i = 0; i < nb && p + 24 <= dirSize; i++) {
    const tOff = dv.getUint32(p) * TWO32 + dv.getUint32(p + 4);
    const tSize = dv.getUint32(p + 8);
    const nameSize = dv.getUint16(p + 18), extra = dv.getUint32(p + 20);
    p += Math.ceil((24 + extra + nameSize) / 8) * 8;
    if (tSize === 0) continue;
    if (tOff % cs !== 0 || tOff + tSize * 8 > size) { corrupt(`bitmap ${i} table is invalid or outside the image file`); continue; }
    inc(tOff, tSize * 8, 'bitmap table');
    const t = new Uint8Array(tSize * 8);
    await dev.src.read(t, tOff);
    const tdv = new DataView(t.buffer);
    for (let k = 0; k < tSize; k++) {
      const off = (tdv.getUint32(k * 8) & 0x00ffffff) * TWO32 + ((tdv.getUint32(k * 8 + 4) & 0xfffffe00) >>> 0);
      if (off) inc(off, cs, 'bitmap data');
    }
  }
}

/** A 64-bit entry in qemu's message format (hex, no padding). */
function hex64(hi: number, lo: number): string {
  return (BigInt(hi >>> 0) << 32n | BigInt(lo >>> 0)).toString(16);
}
