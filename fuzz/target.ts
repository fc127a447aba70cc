// What one fuzz input must survive: the inspector (stream and file, same verdict, no
// internal error) and every format reader through openImage with references denied
// (open, describe, reads, extents, close). Only ImgportError subclasses may be thrown.
import { isDeepStrictEqual } from 'node:util';
import { ImgportError } from '../src/engine/errors.js';
import { denyAllReferences } from '../src/engine/policy.js';
import { openImage } from '../src/engine/block/open.js';
import { StreamInspector, inspectFile, type InspectVerdict } from '../src/engine/inspect/index.js';
import { rng } from './mutate.js';

export interface Failure { where: 'inspector' | 'reader'; kind: string; detail: string }

function describeError(e: unknown): string {
  const err = e as Error;
  return `${err?.name ?? typeof e}: ${err?.message ?? String(e)}\n${(err?.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
}

export async function runInspector(bytes: Uint8Array, file: string, seed: number): Promise<Failure[]> {
  const out: Failure[] = [];
  let fromFile: InspectVerdict | undefined;
  const t0 = Date.now();
  let fromStream: InspectVerdict | undefined;
  try { fromFile = await inspectFile(file); } catch (e) { out.push({ where: 'inspector', kind: 'throw', detail: `inspectFile: ${describeError(e)}` }); }
  try {
    const r = rng(seed ^ 0x5eed);
    const s = new StreamInspector();
    for (let off = 0; off < bytes.length;) {
      const n = r() < 0.3 ? 1 + Math.floor(r() * 16) : 1 + Math.floor(r() * 200000);
      s.push(bytes.subarray(off, off + n));
      off += n;
    }
    fromStream = s.finish();
  } catch (e) { out.push({ where: 'inspector', kind: 'throw', detail: `StreamInspector: ${describeError(e)}` }); }
  // The inspector reads at most 16 MiB: anything near seconds is an algorithmic blow-up.
  const ms = Date.now() - t0;
  if (ms > 3000) out.push({ where: 'inspector', kind: 'slow', detail: `${ms} ms for ${bytes.length} bytes` });
  if (fromFile && fromStream && !isDeepStrictEqual(fromFile, fromStream)) {
    out.push({ where: 'inspector', kind: 'stream-differs', detail: `file ${JSON.stringify(fromFile)}\nstream ${JSON.stringify(fromStream)}` });
  }
  const internal = fromFile?.findings.find((f) => f.code === 'internal-error');
  if (internal) out.push({ where: 'inspector', kind: 'internal-error', detail: internal.message });
  if (fromFile && fromFile.safe && fromFile.virtualSize !== null && !(Number.isSafeInteger(fromFile.virtualSize) && fromFile.virtualSize >= 0)) {
    out.push({ where: 'inspector', kind: 'bad-size', detail: `safe verdict with virtual size ${fromFile.virtualSize}` });
  }
  return out;
}

const MAX_EXTENTS = 20000;

/** Formats opened successfully (for the run's statistics: proof the readers were reached). */
export const openedFormats: Record<string, number> = {};

export async function runReader(file: string, seed: number): Promise<Failure[]> {
  const out: Failure[] = [];
  const bad = (kind: string, e: unknown) => out.push({ where: 'reader', kind, detail: describeError(e) });
  let dev;
  try {
    dev = await openImage(file, { policy: denyAllReferences });
  } catch (e) {
    if (!(e instanceof ImgportError)) bad('open-throws', e);
    return out;
  }
  openedFormats[dev.format] = (openedFormats[dev.format] ?? 0) + 1;
  const r = rng(seed ^ 0xbeef);
  try {
    const vs = dev.virtualSize;
    if (!Number.isSafeInteger(vs) || vs < 0) { out.push({ where: 'reader', kind: 'bad-size', detail: `${dev.format}: virtualSize ${vs}` }); return out; }
    dev.describe();
    const buf = new Uint8Array(65536);
    const offsets = [0, Math.floor(vs / 2), vs - buf.length, Math.floor(r() * vs), Math.floor(r() * vs)];
    for (let off of offsets) {
      off = Math.max(0, Math.min(off, vs - 1));
      off -= off % 512; // not & ~511: offsets pass 2^31
      const len = Math.min(buf.length, vs - off);
      if (len <= 0) continue;
      try { await dev.read(buf.subarray(0, len), off); } catch (e) { if (!(e instanceof ImgportError)) { bad(`${dev.format} read-throws`, e); break; } }
    }
    try {
      let expect = 0;
      let n = 0;
      for await (const x of dev.extents(0, vs)) {
        if (x.offset !== expect || !(x.length > 0) || x.offset + x.length > vs) {
          out.push({ where: 'reader', kind: `${dev.format} extents-contract`, detail: `extent ${JSON.stringify(x)} after ${expect} (virtual size ${vs})` });
          break;
        }
        expect = x.offset + x.length;
        if (++n >= MAX_EXTENTS) break;
      }
      if (n < MAX_EXTENTS && expect !== vs && out.length === 0) {
        out.push({ where: 'reader', kind: `${dev.format} extents-contract`, detail: `extents cover [0, ${expect}) of ${vs}` });
      }
    } catch (e) { if (!(e instanceof ImgportError)) bad(`${dev.format} extents-throws`, e); }
  } catch (e) {
    if (!(e instanceof ImgportError)) bad(`${dev.format} throws`, e);
  } finally {
    try { await dev.close(); } catch (e) { if (!(e instanceof ImgportError)) bad('close-throws', e); }
  }
  return out;
}
