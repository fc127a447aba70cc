// Allocation across a backing chain: what `qemu-img map` shows (which layer holds
// each run), and what `convert` must copy (data runs vs zero runs).
import path from 'node:path';
import type { BlockDevice, Extent } from './device.js';

export interface ChainRun {
  offset: number;
  length: number;
  /** 0 = the top image, 1 = its backing file, ... */
  depth: number;
  /** 'data' = stored bytes; 'zero' = reads as zeros (explicit zeros, holes, or nothing allocated anywhere). */
  kind: 'data' | 'zero';
  /** False when no layer of the chain allocates the run (it reads zeros by default). */
  present: boolean;
  /** The layer the run comes from (the bottom layer for runs allocated nowhere). */
  device: BlockDevice;
  hostOffset?: number;
  compressed?: boolean;
}

/** The combined allocation of `dev` and its backing chain over [offset, offset+length), in guest order. */
export async function* chainMap(dev: BlockDevice, offset = 0, length = dev.virtualSize - offset, depth = 0): AsyncIterable<ChainRun> {
  for await (const e of dev.extents(offset, length)) {
    if (e.kind !== 'unallocated') {
      yield { offset: e.offset, length: e.length, depth, kind: e.kind, present: true, device: dev, hostOffset: e.hostOffset, compressed: e.compressed };
      continue;
    }
    const back = dev.backing;
    const inBacking = back ? Math.max(0, Math.min(e.offset + e.length, back.virtualSize) - e.offset) : 0;
    if (back && inBacking > 0) yield* chainMap(back, e.offset, inBacking, depth + 1);
    // Past the backing file's end (or with no backing file) the guest reads zeros.
    if (inBacking < e.length) {
      yield { offset: e.offset + inBacking, length: e.length - inBacking, depth, kind: 'zero', present: false, device: dev };
    }
  }
}

/**
 * What convert must copy. Without `topOnly`, the whole chain flattened into data and
 * zero runs (unallocated at the bottom counts as zero). With `topOnly` (the target gets
 * a backing file, -B), only the top layer: its unallocated runs stay 'unallocated' so
 * the target leaves them to its backing, and its zero runs must be written as zeros.
 * Adjacent runs of the same kind are merged.
 */
export async function copyPlan(dev: BlockDevice, opts: { topOnly?: boolean } = {}): Promise<Extent[]> {
  const out: Extent[] = [];
  const push = (offset: number, length: number, kind: Extent['kind']) => {
    if (length <= 0) return;
    const last = out[out.length - 1];
    if (last && last.kind === kind && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length, kind });
  };
  if (opts.topOnly) {
    for await (const e of dev.extents(0, dev.virtualSize)) push(e.offset, e.length, e.kind);
  } else {
    for await (const r of chainMap(dev)) push(r.offset, r.length, r.kind);
  }
  return out;
}

/** Bytes in 'data' runs of a plan. */
export function planDataBytes(plan: Extent[]): number {
  let n = 0;
  for (const e of plan) if (e.kind === 'data') n += e.length;
  return n;
}

/** The devices of a chain, top first. */
export function chainDevices(dev: BlockDevice): BlockDevice[] {
  const out: BlockDevice[] = [];
  for (let d: BlockDevice | null = dev; d; d = d.backing) out.push(d);
  return out;
}

/**
 * The names qemu-img shows for each layer, top first: each backing file's name as its
 * parent spells it, joined to the parent's directory ("b.qcow2", "images/base.qcow2"),
 * rather than the absolute path it was opened by.
 */
export function chainDisplayNames(dev: BlockDevice): Map<BlockDevice, string> {
  const names = new Map<BlockDevice, string>();
  let name = dev.name;
  for (let d: BlockDevice | null = dev; d; d = d.backing) {
    names.set(d, name);
    const ref = d.describe().backingFilename;
    if (!d.backing) break;
    name = ref === undefined ? d.backing.name : path.isAbsolute(ref) ? ref : path.join(path.dirname(name), ref);
  }
  return names;
}
