// `measure`: how big the output file of a conversion or creation would be.
import type { FileAccessPolicy } from '../policy.js';
import { formatByName, openImage } from '../block/open.js';
import type { Extent } from '../block/device.js';
import { copyPlan, planDataBytes } from '../block/chain.js';
import { InvalidArgument } from '../errors.js';
import { validateCreateOptions } from './create.js';

export interface MeasureOptions {
  targetFormat: string;
  options?: Record<string, string>;
  /** Either a size (new empty image) or a source image. */
  size?: number;
  source?: string;
  sourceFormat?: string;
  policy?: FileAccessPolicy;
}

export async function measure(o: MeasureOptions): Promise<{ required: number; fullyAllocated: number }> {
  const driver = formatByName(o.targetFormat);
  const options = o.options ?? {};
  validateCreateOptions(o.targetFormat, options);
  if ((o.size === undefined) === (o.source === undefined)) throw new InvalidArgument('give either --size SIZE or a source image');
  let virtualSize: number;
  let allocated: number;
  if (o.source !== undefined) {
    const src = await openImage(o.source, { format: o.sourceFormat, policy: o.policy });
    try {
      virtualSize = src.virtualSize;
      const plan = await copyPlan(src);
      const unit = driver.allocationUnit?.(options);
      allocated = unit ? roundedDataBytes(plan, unit) : planDataBytes(plan);
    } finally {
      await src.close();
    }
  } else {
    virtualSize = o.size!;
    allocated = 0;
  }
  // Formats without their own answer store guest bytes as they are.
  return driver.measure ? driver.measure(virtualSize, allocated, options) : { required: virtualSize, fullyAllocated: virtualSize };
}

/** Data bytes with every run widened to whole allocation units, each unit counted once (qemu's way). */
function roundedDataBytes(plan: Extent[], unit: number): number {
  let total = 0;
  let countedTo = 0; // end of the last unit already counted
  for (const e of plan) {
    if (e.kind !== 'data') continue;
    const start = Math.max(Math.floor(e.offset / unit) * unit, countedTo);
    const end = Math.ceil((e.offset + e.length) / unit) * unit;
    if (end > start) { total += end - start; countedTo = end; }
  }
  return total;
}
