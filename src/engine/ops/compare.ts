// `compare`: are two images' guest contents equal? Runs that read as zeros in both are
// skipped from the allocation maps; the rest is read in large chunks and memcmp'd.
import type { BlockDevice, Extent } from '../block/device.js';
import type { FileAccessPolicy } from '../policy.js';
import { openImage } from '../block/open.js';
import { copyPlan } from '../block/chain.js';
import { isAllZero } from '../io/zero.js';

export type CompareResult =
  | { identical: true; sizeMismatch: boolean }
  | { identical: false; offset: number; reason: 'content' | 'size' | 'allocation'; sizeMismatch: boolean };

const CHUNK = 4 << 20;
const SECTOR = 512;

/** Cursor over a plan: is [off, off+len) entirely zero, and the kind at an offset. */
class PlanCursor {
  private i = 0;
  constructor(private plan: Extent[]) {}
  private seek(off: number): void {
    while (this.i < this.plan.length && this.plan[this.i]!.offset + this.plan[this.i]!.length <= off) this.i++;
  }
  allZero(off: number, len: number): boolean {
    this.seek(off);
    for (let j = this.i; j < this.plan.length; j++) {
      const e = this.plan[j]!;
      if (e.offset >= off + len) break;
      if (e.kind === 'data') return false;
    }
    return true;
  }
  /** Offsets in [off, off+len) where this plan's data/zero status differs from `other`'s, first one. */
  firstKindMismatch(other: PlanCursor, off: number, len: number): number | null {
    const a = this.runs(off, len), b = other.runs(off, len);
    let ia = 0, ib = 0, pos = off;
    while (ia < a.length && ib < b.length) {
      if (a[ia]!.kind !== b[ib]!.kind) return pos;
      const ea = a[ia]!.end, eb = b[ib]!.end;
      pos = Math.min(ea, eb);
      if (ea === pos) ia++;
      if (eb === pos) ib++;
    }
    return null;
  }
  private runs(off: number, len: number): Array<{ kind: string; end: number }> {
    this.seek(off);
    const out: Array<{ kind: string; end: number }> = [];
    for (let j = this.i; j < this.plan.length; j++) {
      const e = this.plan[j]!;
      if (e.offset >= off + len) break;
      out.push({ kind: e.kind === 'data' ? 'data' : 'zero', end: Math.min(e.offset + e.length, off + len) });
    }
    return out;
  }
}

function firstDiff(a: Buffer, b: Buffer): number {
  for (let p = 0; p < a.length; p += SECTOR) {
    const n = Math.min(SECTOR, a.length - p);
    if (!a.subarray(p, p + n).equals(b.subarray(p, p + n))) return p;
  }
  return -1;
}

function firstNonZero(a: Buffer): number {
  for (let p = 0; p < a.length; p += SECTOR) {
    if (!isAllZero(a.subarray(p, Math.min(a.length, p + SECTOR)))) return p;
  }
  return -1;
}

export async function compareDevices(a: BlockDevice, b: BlockDevice, opts: { strict?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<CompareResult> {
  const sizeMismatch = a.virtualSize !== b.virtualSize;
  if (sizeMismatch && opts.strict) return { identical: false, offset: Math.min(a.virtualSize, b.virtualSize), reason: 'size', sizeMismatch };
  const [pa, pb] = await Promise.all([copyPlan(a), copyPlan(b)]);
  const ca = new PlanCursor(pa), cb = new PlanCursor(pb);
  const common = Math.min(a.virtualSize, b.virtualSize);
  const total = Math.max(a.virtualSize, b.virtualSize);
  const ba = Buffer.allocUnsafeSlow(CHUNK), bb = Buffer.allocUnsafeSlow(CHUNK);
  for (let off = 0; off < common; off += CHUNK) {
    const len = Math.min(CHUNK, common - off);
    const za = ca.allZero(off, len), zb = cb.allZero(off, len);
    if (!(za && zb)) {
      const xa = ba.subarray(0, len), xb = bb.subarray(0, len);
      if (za) xa.fill(0); else await a.read(xa, off);
      if (zb) xb.fill(0); else await b.read(xb, off);
      if (!xa.equals(xb)) return { identical: false, offset: off + firstDiff(xa, xb), reason: 'content', sizeMismatch };
    }
    if (opts.strict) {
      const k = ca.firstKindMismatch(cb, off, len);
      if (k !== null) return { identical: false, offset: k, reason: 'allocation', sizeMismatch };
    }
    opts.onProgress?.(off + len, total);
  }
  // The larger image's tail must read as zeros.
  const big = a.virtualSize > b.virtualSize ? a : b;
  const cbig = big === a ? ca : cb;
  for (let off = common; off < big.virtualSize; off += CHUNK) {
    const len = Math.min(CHUNK, big.virtualSize - off);
    if (!cbig.allZero(off, len)) {
      const x = ba.subarray(0, len);
      await big.read(x, off);
      const nz = firstNonZero(x);
      if (nz >= 0) return { identical: false, offset: off + nz, reason: 'content', sizeMismatch };
    }
    opts.onProgress?.(off + len, total);
  }
  return { identical: true, sizeMismatch };
}

export async function compareImages(fileA: string, fileB: string, opts: { formatA?: string; formatB?: string; strict?: boolean; policy?: FileAccessPolicy; onProgress?: (done: number, total: number) => void } = {}): Promise<CompareResult> {
  const a = await openImage(fileA, { format: opts.formatA, policy: opts.policy });
  try {
    const b = await openImage(fileB, { format: opts.formatB, policy: opts.policy });
    try {
      return await compareDevices(a, b, opts);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}
