// Converting an image: plan from the allocation map, create the target's writer with
// that plan, stream the data through it. Any failure removes what was written.
import fs from 'node:fs/promises';
import type { BlockDevice, ImageWriter } from '../block/device.js';
import type { ByteSink } from '../io/source.js';
import type { FileAccessPolicy } from '../policy.js';
import { copyPlan, planDataBytes } from '../block/chain.js';
import { formatByName, openImage } from '../block/open.js';
import { FileSink } from '../io/file.js';
import { stdoutSink } from '../io/stdout.js';
import { zeroBuffer } from '../io/zero.js';
import { InvalidArgument } from '../errors.js';
import { copyToWriter, type CopyOptions } from './copy.js';

export { copyToWriter, type CopyOptions } from './copy.js';

export interface ConvertOptions {
  source: string;
  sourceFormat?: string;
  /** '-' = standard output (streamable target formats only). */
  target: string;
  targetFormat: string;
  options?: Record<string, string>;
  compress?: boolean;
  /** -S: default 4096; 0 = write everything. */
  sparseSize?: number;
  /** -n: the target exists already; write into it. */
  noCreate?: boolean;
  /** -B/-F: the target gets this backing file and only the source's top layer is copied. */
  backingFile?: string;
  backingFormat?: string;
  policy?: FileAccessPolicy;
  onProgress?: (done: number, total: number) => void;
  /**
   * Make the output durable (fsync) before returning. Off by default, as qemu-img convert's
   * default cache mode "unsafe": the data is in the page cache and the kernel writes it out.
   */
  flush?: boolean;
}

export interface ConvertResult { virtualSize: number; dataBytes: number }

export interface ConvertDeviceOptions extends Pick<CopyOptions, 'sparseSize' | 'onProgress' | 'chunkSize' | 'inFlight'> {
  /** Target format name (registry). */
  format: string;
  options?: Record<string, string>;
  compress?: boolean;
  backingFile?: string;
  backingFormat?: string;
}

/**
 * Writes `src` as a new image of `opts.format` into `sink` (a file, stdout, an HTTP
 * response, a tar entry...). With a backing file only the top layer is copied. On
 * failure the writer is aborted; the sink (and removing a file behind it) is the caller's.
 */
export async function convertDevice(src: BlockDevice, sink: ByteSink, opts: ConvertDeviceOptions): Promise<ConvertResult> {
  const driver = formatByName(opts.format, sink.name);
  if (!driver.create) throw new InvalidArgument(`format '${driver.name}' cannot be written`, { file: sink.name });
  if (!sink.seekable && !driver.streamable) {
    throw new InvalidArgument(`format '${driver.name}' cannot be written to a stream; write to a file instead`, { file: sink.name });
  }
  const hasBacking = opts.backingFile !== undefined;
  const plan = await copyPlan(src, { topOnly: hasBacking });
  const writer = await driver.create({
    sink,
    virtualSize: src.virtualSize,
    options: opts.options ?? {},
    compress: opts.compress,
    backingFile: opts.backingFile,
    backingFormat: opts.backingFormat,
    plan,
  });
  try {
    const { dataBytes } = await copyToWriter(src, writer, plan, { ...opts, explicitZeros: hasBacking });
    await writer.finish();
    return { virtualSize: src.virtualSize, dataBytes };
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err;
  }
}

/** An ImageWriter over an existing writable device (convert -n). */
export function deviceWriter(dev: BlockDevice): ImageWriter {
  const write = dev.write?.bind(dev);
  if (!write) throw new InvalidArgument(`format '${dev.format}' cannot be written in place`, { file: dev.name });
  return {
    writeData: (offset, data) => write(data, offset),
    async writeZero(offset, length) {
      const z = zeroBuffer();
      for (let p = 0; p < length; p += z.length) await write(z.subarray(0, Math.min(z.length, length - p)), offset + p);
    },
    async finish() { await dev.flush?.(); },
    async abort() { /* in-place writes cannot be undone */ },
  };
}

async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([fs.stat(a), fs.stat(b)]);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** `imgport convert`: source file → target file (or stdout), any format pair the registry allows. */
export async function convertImage(o: ConvertOptions): Promise<ConvertResult> {
  const targetDriver = formatByName(o.targetFormat, o.target);
  if (o.target !== '-' && await sameFile(o.source, o.target)) {
    throw new InvalidArgument('source and target are the same file', { file: o.target });
  }
  if (o.backingFile === undefined && o.backingFormat !== undefined) {
    throw new InvalidArgument('a backing format (-F) needs a backing file (-B)', { file: o.target });
  }
  const src = await openImage(o.source, { format: o.sourceFormat, policy: o.policy });
  try {
    if (o.noCreate) {
      if (o.target === '-') throw new InvalidArgument('-n needs an existing target file, not standard output');
      const dst = await openImage(o.target, { format: targetDriver.name, writable: true, openBacking: false, policy: o.policy });
      try {
        if (dst.virtualSize < src.virtualSize) {
          throw new InvalidArgument(`target is smaller (${dst.virtualSize} bytes) than the source (${src.virtualSize} bytes)`, { file: o.target });
        }
        const writer = deviceWriter(dst);
        const plan = await copyPlan(src, { topOnly: o.backingFile !== undefined });
        const { dataBytes } = await copyToWriter(src, writer, plan, { sparseSize: o.sparseSize, onProgress: o.onProgress, explicitZeros: true });
        await writer.finish();
        return { virtualSize: src.virtualSize, dataBytes };
      } finally {
        await dst.close();
      }
    }

    if (o.target === '-') {
      return await convertDevice(src, stdoutSink(), { ...convertOpts(o), format: targetDriver.name });
    }
    const file = await FileSink.create(o.target);
    // Without flush, writers' sync() calls are no-ops for this output (cache=unsafe).
    const sink: ByteSink = o.flush ? file : Object.assign(Object.create(file) as FileSink, { sync: async () => {} });
    try {
      const r = await convertDevice(src, sink, { ...convertOpts(o), format: targetDriver.name });
      await file.close();
      return r;
    } catch (err) {
      await file.close().catch(() => {});
      await fs.unlink(o.target).catch(() => {});
      throw err;
    }
  } finally {
    await src.close();
  }
}

function convertOpts(o: ConvertOptions): Omit<ConvertDeviceOptions, 'format'> {
  return {
    options: o.options,
    compress: o.compress,
    sparseSize: o.sparseSize,
    backingFile: o.backingFile,
    backingFormat: o.backingFormat,
    onProgress: o.onProgress,
  };
}

/** Bytes a conversion would hand to the writer at most (data runs of the flattened chain). */
export async function plannedDataBytes(src: BlockDevice, topOnly = false): Promise<number> {
  return planDataBytes(await copyPlan(src, { topOnly }));
}
