// `resize`: change the virtual size through the format's own resize.
import type { FileAccessPolicy } from '../policy.js';
import { openImage } from '../block/open.js';
import { InvalidArgument, UnsupportedFeature } from '../errors.js';
import { parseSize } from './size.js';

/** "[+|-]SIZE" relative to `current`, or an absolute size. */
export function resolveNewSize(spec: string, current: number): number {
  const sign = spec[0] === '+' ? 1 : spec[0] === '-' ? -1 : 0;
  const n = parseSize(sign ? spec.slice(1) : spec);
  const size = sign ? current + sign * n : n;
  if (size < 0) throw new InvalidArgument(`new size ${size} is negative`);
  if (!Number.isSafeInteger(size)) throw new InvalidArgument(`new size is too large`);
  return size;
}

export async function resizeImage(file: string, spec: string, opts: { format?: string; shrink?: boolean; preallocation?: string; policy?: FileAccessPolicy } = {}): Promise<{ oldSize: number; newSize: number }> {
  const dev = await openImage(file, { format: opts.format, writable: true, openBacking: false, policy: opts.policy });
  try {
    if (!dev.resize) throw new UnsupportedFeature(`format '${dev.format}' does not support resizing`, { file });
    const oldSize = dev.virtualSize;
    const newSize = resolveNewSize(spec, oldSize);
    if (newSize < oldSize && !opts.shrink) {
      throw new InvalidArgument('use the --shrink option to shrink an image; data past the new size is lost', { file });
    }
    await dev.resize(newSize, { shrink: !!opts.shrink, preallocation: opts.preallocation });
    await dev.flush?.();
    return { oldSize, newSize };
  } finally {
    await dev.close();
  }
}
