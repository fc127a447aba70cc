// Opening a VMDK: a single hosted sparse file (embedded descriptor) or a text
// descriptor naming extent files, which are opened only through ctx.openFile (the
// caller's policy decides), and a parent through ctx.openReference.

import type { BlockDevice, OpenContext } from '../../block/device.js';
import type { ByteSource } from '../../io/source.js';
import { CorruptImage, UnsupportedFeature } from '../../errors.js';
import { SECTOR, parseSparseHeader } from './header.js';
import { MAX_DESCRIPTOR_BYTES, type Descriptor, looksLikeDescriptor, parseDescriptor } from './descriptor.js';
import { MAX_CAPACITY_SECTORS, SparseExtent, parseCowdHeader } from './sparse.js';
import { type Part, VmdkDevice } from './device.js';

export async function openVmdk(source: ByteSource, ctx: OpenContext): Promise<BlockDevice> {
  const file = source.name;
  const head = new Uint8Array(Math.min(source.size, SECTOR));
  await source.read(head, 0);
  const opened: ByteSource[] = [];
  try {
    let parts: Part[];
    let desc: Descriptor | null;
    let monolithic: boolean;
    if (parseSparseHeader(head)) {
      const ext = await SparseExtent.open(source, head);
      const bytes = await ext.embeddedDescriptor(MAX_DESCRIPTOR_BYTES);
      desc = bytes ? parseDescriptor(bytes, file) : null;
      parts = [{ kind: 'sparse', start: 0, length: ext.capacityBytes, ext, file, type: 'SPARSE' }];
      monolithic = true;
    } else if (parseCowdHeader(head)) {
      // A bare ESX sparse (COWD) extent, opened without its descriptor.
      const ext = await SparseExtent.open(source, head);
      desc = null;
      parts = [{ kind: 'sparse', start: 0, length: ext.capacityBytes, ext, file, type: 'VMFSSPARSE' }];
      monolithic = true;
    } else if (looksLikeDescriptor(head)) {
      if (source.size > MAX_DESCRIPTOR_BYTES) {
        throw new CorruptImage(`VMDK descriptor file is ${source.size} bytes, more than the ${MAX_DESCRIPTOR_BYTES} allowed`, { file });
      }
      const bytes = new Uint8Array(source.size);
      await source.read(bytes, 0);
      desc = parseDescriptor(bytes, file);
      parts = await openExtents(desc, source, ctx, opened);
      monolithic = false;
    } else {
      throw new CorruptImage('not a VMDK file (neither a sparse extent header nor a descriptor)', { file });
    }
    const meta = {
      cid: desc?.cid ?? 0xffffffff,
      parentCid: desc?.parentCid ?? 0xffffffff,
      createType: desc?.createType ?? (parts[0]?.type === 'VMFSSPARSE' ? 'vmfsSparse' : 'monolithicSparse'),
      parentHint: desc?.parentFileNameHint,
      monolithic,
    };
    let backing: BlockDevice | null = null;
    if (meta.parentHint !== undefined && ctx.openBacking) {
      backing = await ctx.openReference(meta.parentHint, file, undefined, 'parent');
    }
    return new VmdkDevice(file, parts, meta, backing, [source, ...opened]);
  } catch (err) {
    // `source` is closed by our caller on failure; the extent files are ours.
    for (const s of opened) await s.close().catch(() => {});
    throw err;
  }
}

async function openExtents(desc: Descriptor, source: ByteSource, ctx: OpenContext, opened: ByteSource[]): Promise<Part[]> {
  const file = source.name;
  if (desc.extents.length === 0) throw new CorruptImage('VMDK descriptor lists no extents', { file });
  const parts: Part[] = [];
  const byName = new Map<string, ByteSource>();
  let start = 0;
  const openByName = async (name: string): Promise<ByteSource> => {
    let s = byName.get(name);
    if (!s) {
      s = await ctx.openFile(name, file, 'extent');
      opened.push(s);
      byName.set(name, s);
    }
    return s;
  };
  for (const e of desc.extents) {
    const length = e.sectors * SECTOR;
    if (e.sectors > MAX_CAPACITY_SECTORS || start + length > MAX_CAPACITY_SECTORS * SECTOR) {
      throw new CorruptImage(`VMDK descriptor line ${e.line}: extents add up to more than ${MAX_CAPACITY_SECTORS} sectors`, { file });
    }
    if (e.access === 'NOACCESS') throw new UnsupportedFeature(`VMDK descriptor line ${e.line}: NOACCESS extent`, { file });
    switch (e.type) {
      case 'ZERO':
        parts.push({ kind: 'zero', start, length, file: '', type: e.type });
        break;
      case 'FLAT': case 'VMFS': case 'VMFSRDM': case 'VMFSRAW': {
        const src = await openByName(e.file);
        parts.push({ kind: 'flat', start, length, src, fileOffset: e.offset * SECTOR, file: e.file, type: e.type });
        break;
      }
      case 'SPARSE': case 'VMFSSPARSE': {
        const src = await openByName(e.file);
        const h = new Uint8Array(Math.min(src.size, SECTOR));
        await src.read(h, 0);
        if (e.type === 'SPARSE' ? !parseSparseHeader(h) : !parseCowdHeader(h)) {
          throw new CorruptImage(`VMDK descriptor line ${e.line}: extent '${e.file}' is not a ${e.type === 'SPARSE' ? 'hosted' : 'VMFS (COWD)'} sparse extent`, { file });
        }
        const ext = await SparseExtent.open(src, h);
        parts.push({ kind: 'sparse', start, length, ext, file: e.file, type: e.type });
        break;
      }
      default:
        throw new UnsupportedFeature(`VMDK descriptor line ${e.line}: ${e.type} extents are not supported`, { file });
    }
    start += length;
  }
  return parts;
}
