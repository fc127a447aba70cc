// VHDX log replay, in memory. A header with a non-zero log GUID means metadata writes
// may sit in the log without having reached their place in the file. We find the
// active sequence of log entries, check every CRC-32C, and return the 4 KiB pages the
// replay would write; readers overlay them on what they read. The file is never written.

import type { ByteSource } from '../../io/source.js';
import { readExact } from '../../block/bat.js';
import { crc32c } from '../../block/crc32c.js';
import { sameBytes } from '../../block/uuid.js';
import { CorruptImage, UnsupportedFeature } from '../../errors.js';
import type { Header } from './structs.js';

const PAGE = 4096;
const MAX_LOG = 256 * 1024 * 1024;
/** Pages a replay may produce (zero descriptors can be long): 4 GiB worth. */
const MAX_PAGES = 1 << 20;
const ZERO_PAGE = new Uint8Array(PAGE);

interface Entry {
  at: number;
  length: number;
  tail: number;
  seq: bigint;
  descCount: number;
  flushedOffset: number;
  lastOffset: number;
}

/** File offset (4 KiB aligned) -> page contents after replay. */
export type Overlay = Map<number, Uint8Array>;

export async function replayLog(src: ByteSource, h: Header): Promise<Overlay> {
  const f = src.name;
  if (h.logVersion !== 0) throw new UnsupportedFeature(`log version ${h.logVersion}`, { file: f, offset: h.at + 64 });
  if (h.logLength === 0 || h.logLength % (1024 * 1024) !== 0 || h.logOffset % (1024 * 1024) !== 0 || h.logLength > MAX_LOG ||
      h.logOffset + h.logLength > src.size) {
    throw new CorruptImage(`log (${h.logLength} bytes at ${h.logOffset}) is misaligned or outside the file`, { file: f, offset: h.at + 68 });
  }
  const log = await readExact(src, new Uint8Array(h.logLength), h.logOffset, 'VHDX log');
  const L = log.length;
  const dv = new DataView(log.buffer);
  // The log is circular: an entry may wrap past its end.
  const slice = (at: number, len: number): Uint8Array => {
    at %= L;
    if (at + len <= L) return log.subarray(at, at + len);
    const out = new Uint8Array(len);
    out.set(log.subarray(at), 0);
    out.set(log.subarray(0, len - (L - at)), L - at);
    return out;
  };
  const parse = (at: number): Entry | null => {
    if (Buffer.from(log.subarray(at, at + 4)).toString('latin1') !== 'loge') return null;
    const length = dv.getUint32(at + 8, true);
    if (length < PAGE || length % PAGE !== 0 || length > L) return null;
    const body = slice(at, length);
    const bdv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    if (!sameBytes(body.subarray(32, 48), h.logGuid)) return null;
    if (crc32c(body, 4) !== bdv.getUint32(4, true)) return null;
    const seq = bdv.getBigUint64(16, true);
    const descCount = bdv.getUint32(24, true);
    if (seq === 0n || Math.ceil((64 + descCount * 32) / PAGE) * PAGE > length) return null;
    return { at, length, tail: bdv.getUint32(12, true), seq, descCount, flushedOffset: Number(bdv.getBigUint64(48, true)), lastOffset: Number(bdv.getBigUint64(56, true)) };
  };
  const entries = new Map<number, Entry>();
  for (let at = 0; at < L; at += PAGE) {
    const e = parse(at);
    if (e) entries.set(at, e);
  }
  // The head is the valid entry with the highest sequence number whose chain from its tail is unbroken.
  const byseq = [...entries.values()].sort((a, b) => (a.seq < b.seq ? 1 : a.seq > b.seq ? -1 : 0));
  let chain: Entry[] | null = null;
  for (const head of byseq) {
    const tail = entries.get(head.tail);
    if (!tail || tail.seq > head.seq) continue;
    const c: Entry[] = [tail];
    let cur = tail;
    while (cur !== head && c.length <= entries.size) {
      const next = entries.get((cur.at + cur.length) % L);
      if (!next || next.seq !== cur.seq + 1n) break;
      c.push(next);
      cur = next;
    }
    if (cur === head) { chain = c; break; }
  }
  if (!chain) {
    if (entries.size === 0) return new Map(); // an empty log: nothing to replay
    throw new CorruptImage('VHDX log has entries but no complete sequence to replay', { file: f, offset: h.logOffset });
  }
  const last = chain[chain.length - 1]!;
  if (last.flushedOffset > src.size) {
    throw new CorruptImage(`VHDX log says the file should be at least ${last.flushedOffset} bytes, it has ${src.size}`, { file: f, offset: h.logOffset + last.at });
  }
  const overlay: Overlay = new Map();
  for (const e of chain) {
    const body = slice(e.at, e.length);
    const bdv = new DataView(body.buffer, body.byteOffset, body.byteLength);
    let dataAt = Math.ceil((64 + e.descCount * 32) / PAGE) * PAGE;
    for (let d = 0; d < e.descCount; d++) {
      const p = 64 + d * 32;
      const sig = Buffer.from(body.subarray(p, p + 4)).toString('latin1');
      const fileOffset = Number(bdv.getBigUint64(p + 16, true));
      if (bdv.getBigUint64(p + 24, true) !== e.seq || fileOffset % PAGE !== 0) {
        throw new CorruptImage(`log entry ${e.seq} descriptor ${d} is inconsistent`, { file: f, offset: h.logOffset + e.at + p });
      }
      if (sig === 'zero') {
        const len = Number(bdv.getBigUint64(p + 8, true));
        if (len % PAGE !== 0 || overlay.size + len / PAGE > MAX_PAGES) throw new CorruptImage(`log zero descriptor of ${len} bytes`, { file: f, offset: h.logOffset + e.at + p });
        for (let o = 0; o < len; o += PAGE) overlay.set(fileOffset + o, ZERO_PAGE);
      } else if (sig === 'desc') {
        if (dataAt + PAGE > e.length) throw new CorruptImage(`log entry ${e.seq} has more descriptors than data sectors`, { file: f, offset: h.logOffset + e.at });
        const sec = body.subarray(dataAt, dataAt + PAGE);
        const sdv = new DataView(sec.buffer, sec.byteOffset, PAGE);
        if (Buffer.from(sec.subarray(0, 4)).toString('latin1') !== 'data' ||
            (BigInt(sdv.getUint32(4, true)) << 32n | BigInt(sdv.getUint32(4092, true))) !== e.seq) {
          throw new CorruptImage(`log data sector ${d} of entry ${e.seq} is invalid`, { file: f, offset: h.logOffset + (e.at + dataAt) % L });
        }
        if (overlay.size >= MAX_PAGES) throw new UnsupportedFeature('VHDX log replay too large', { file: f });
        const page = new Uint8Array(PAGE);
        page.set(body.subarray(p + 8, p + 16), 0); // leading bytes
        page.set(sec.subarray(8, 4092), 8);
        page.set(body.subarray(p + 4, p + 8), 4092); // trailing bytes
        overlay.set(fileOffset, page);
        dataAt += PAGE;
      } else {
        throw new CorruptImage(`unknown log descriptor '${sig}'`, { file: f, offset: h.logOffset + e.at + p });
      }
    }
  }
  return overlay;
}

/** Patches `buf` (read from the file at `offset`) with replayed pages. */
export function applyOverlay(overlay: Overlay, buf: Uint8Array, offset: number): void {
  if (overlay.size === 0) return;
  const end = offset + buf.length;
  if (buf.length / PAGE > overlay.size) {
    for (const [at, page] of overlay) {
      if (at + PAGE <= offset || at >= end) continue;
      copyPage(buf, offset, at, page);
    }
    return;
  }
  for (let at = Math.floor(offset / PAGE) * PAGE; at < end; at += PAGE) {
    const page = overlay.get(at);
    if (page) copyPage(buf, offset, at, page);
  }
}

function copyPage(buf: Uint8Array, offset: number, at: number, page: Uint8Array): void {
  const s = Math.max(at, offset);
  const e = Math.min(at + PAGE, offset + buf.length);
  buf.set(page.subarray(s - at, e - at), s - offset);
}
