// The internal snapshot table: parsing (validated, bounded) and serialization in the
// layout qemu writes (extra data: large vm state size, disk size, icount).

import { CorruptImage } from '../../errors.js';
import type { ByteSource } from '../../io/source.js';
import type { SnapshotInfo } from '../../block/device.js';
import { MAX_L1_BYTES, MAX_SNAPSHOT_TABLE_BYTES, TWO32 } from './constants.js';
import { putU64 } from './header.js';

export interface SnapshotEntry {
  l1TableOffset: number;
  l1Size: number;
  id: string;
  name: string;
  dateSec: number;
  dateNsec: number;
  vmClockNsec: number;
  vmStateSize: number;
  /** Guest size when the snapshot was taken (extra data), if recorded. */
  diskSize?: number;
  icount?: number;
  /** Extra data beyond the fields we know, kept on rewrite. */
  extraTail: Uint8Array;
}

/** qemu's cap on a snapshot entry's extra data. */
const MAX_EXTRA = 1024;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

export async function readSnapshotTable(src: ByteSource, file: string, offset: number, count: number, clusterSize: number): Promise<{ entries: SnapshotEntry[]; bytes: number }> {
  const entries: SnapshotEntry[] = [];
  if (count === 0) return { entries, bytes: 0 };
  const limit = Math.min(src.size, offset + MAX_SNAPSHOT_TABLE_BYTES);
  // A small window over the table, refilled as entries are consumed.
  let win = new Uint8Array(0), winStart = offset;
  const need = async (at: number, len: number): Promise<DataView> => {
    if (at + len > limit) throw new CorruptImage(`snapshot table entry at ${at} extends past the end of the file or the ${MAX_SNAPSHOT_TABLE_BYTES}-byte limit`, { file, offset: at });
    if (at < winStart || at + len > winStart + win.length) {
      win = new Uint8Array(Math.min(Math.max(len, 65536), limit - at));
      winStart = at;
      if (await src.read(win, at) < len) throw new CorruptImage('snapshot table is truncated', { file, offset: at });
    }
    return new DataView(win.buffer, at - winStart, len);
  };
  let pos = offset;
  for (let i = 0; i < count; i++) {
    const dv = await need(pos, 40);
    const l1TableOffset = dv.getUint32(0) * TWO32 + dv.getUint32(4);
    const l1Size = dv.getUint32(8);
    const idLen = dv.getUint16(12), nameLen = dv.getUint16(14);
    const extraLen = dv.getUint32(36);
    if (extraLen > MAX_EXTRA) throw new CorruptImage(`snapshot ${i} has ${extraLen} bytes of extra data (limit ${MAX_EXTRA})`, { file, offset: pos + 36 });
    if (l1Size * 8 > MAX_L1_BYTES) throw new CorruptImage(`snapshot ${i} L1 table of ${l1Size} entries is too large`, { file, offset: pos + 8 });
    if (l1Size > 0 && (l1TableOffset % clusterSize !== 0 || l1TableOffset === 0 || l1TableOffset + l1Size * 8 > src.size)) {
      throw new CorruptImage(`snapshot ${i} L1 table offset ${l1TableOffset} is invalid or past the end of the file`, { file, offset: pos });
    }
    const e: SnapshotEntry = {
      l1TableOffset, l1Size, id: '', name: '',
      dateSec: dv.getUint32(16), dateNsec: dv.getUint32(20),
      vmClockNsec: dv.getUint32(24) * TWO32 + dv.getUint32(28),
      vmStateSize: dv.getUint32(32),
      extraTail: new Uint8Array(0),
    };
    const total = 40 + extraLen + idLen + nameLen;
    const body = await need(pos, total);
    const bytes = new Uint8Array(body.buffer, body.byteOffset, total);
    const x = new DataView(bytes.buffer, bytes.byteOffset + 40, extraLen);
    if (extraLen >= 8) e.vmStateSize = x.getUint32(0) * TWO32 + x.getUint32(4);
    if (extraLen >= 16) e.diskSize = x.getUint32(8) * TWO32 + x.getUint32(12);
    if (extraLen >= 24) e.icount = x.getUint32(16) * TWO32 + x.getUint32(20);
    if (extraLen > 24) e.extraTail = bytes.slice(40 + 24, 40 + extraLen);
    e.id = decoder.decode(bytes.subarray(40 + extraLen, 40 + extraLen + idLen));
    e.name = decoder.decode(bytes.subarray(40 + extraLen + idLen, total));
    entries.push(e);
    pos += Math.ceil(total / 8) * 8;
  }
  return { entries, bytes: pos - offset };
}

export function serializeSnapshotTable(entries: SnapshotEntry[]): Uint8Array {
  const parts = entries.map((e) => {
    const id = encoder.encode(e.id), name = encoder.encode(e.name);
    const extraLen = 24 + e.extraTail.length;
    const total = 40 + extraLen + id.length + name.length;
    const b = new Uint8Array(Math.ceil(total / 8) * 8);
    const dv = new DataView(b.buffer);
    putU64(dv, 0, e.l1TableOffset);
    dv.setUint32(8, e.l1Size);
    dv.setUint16(12, id.length);
    dv.setUint16(14, name.length);
    dv.setUint32(16, e.dateSec);
    dv.setUint32(20, e.dateNsec);
    putU64(dv, 24, e.vmClockNsec);
    dv.setUint32(32, Math.min(e.vmStateSize, 0xffffffff));
    dv.setUint32(36, extraLen);
    putU64(dv, 40, e.vmStateSize);
    putU64(dv, 48, e.diskSize ?? 0);
    // qemu writes -1 when no icount was recorded.
    if (e.icount === undefined) { dv.setUint32(56, 0xffffffff); dv.setUint32(60, 0xffffffff); } else putU64(dv, 56, e.icount);
    b.set(e.extraTail, 64);
    b.set(id, 40 + extraLen);
    b.set(name, 40 + extraLen + id.length);
    return b;
  });
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function snapshotInfo(e: SnapshotEntry): SnapshotInfo {
  const info: SnapshotInfo = {
    id: e.id, name: e.name, vmStateSize: e.vmStateSize,
    dateSec: e.dateSec, dateNsec: e.dateNsec, vmClockNsec: e.vmClockNsec,
  };
  if (e.icount !== undefined && e.icount <= Number.MAX_SAFE_INTEGER) info.icount = e.icount;
  if (e.diskSize !== undefined) info.virtualSize = e.diskSize;
  return info;
}
