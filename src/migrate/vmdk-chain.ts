// Which files a VMware disk really is: the .vmx names the newest snapshot delta, whose
// descriptor names its parent (parentFileNameHint), and so on down to the base. We only
// read descriptors here (the VMDK driver's parser); the engine opens the chain itself when
// converting. Every parent is resolved through the caller's FileAccessPolicy.

import fs from 'node:fs/promises';
import path from 'node:path';
import { CorruptImage, UnsafeImage, ioError } from '../engine/errors.js';
import type { FileAccessPolicy } from '../engine/policy.js';
import { parseDescriptor, looksLikeDescriptor, MAX_DESCRIPTOR_BYTES, type Descriptor } from '../engine/formats/vmdk/descriptor.js';
import { parseSparseHeader, SECTOR } from '../engine/formats/vmdk/header.js';
import { MAX_CHAIN_DEPTH } from '../engine/block/open.js';

export interface VmdkLayer {
  path: string;
  createType: string;
  /** Virtual size in bytes (sum of the extents, or the sparse header's capacity). */
  capacity: number;
  adapterType?: string;
  parentFileNameHint?: string;
}

/** Reads the descriptor of one VMDK (text descriptor file, or embedded in a sparse file). */
export async function readVmdkDescriptor(file: string): Promise<{ descriptor: Descriptor; capacity: number }> {
  let fh: fs.FileHandle;
  try { fh = await fs.open(file, 'r'); } catch (err) { throw ioError(err, file, 'cannot open disk'); }
  try {
    const head = Buffer.alloc(SECTOR);
    const { bytesRead } = await fh.read(head, 0, SECTOR, 0);
    const hdr = bytesRead === SECTOR ? parseSparseHeader(head) : null;
    if (hdr) {
      if (hdr.descriptorOffset <= 0 || hdr.descriptorSize <= 0) {
        throw new CorruptImage('sparse VMDK without an embedded descriptor (a bare extent, not a disk the .vmx can name)', { file });
      }
      const len = hdr.descriptorSize * SECTOR;
      if (len > MAX_DESCRIPTOR_BYTES) throw new CorruptImage(`embedded VMDK descriptor of ${len} bytes is too large`, { file });
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, hdr.descriptorOffset * SECTOR);
      const descriptor = parseDescriptor(buf, file);
      return { descriptor, capacity: hdr.capacity * SECTOR };
    }
    if (!looksLikeDescriptor(head.subarray(0, bytesRead))) {
      throw new CorruptImage('not a VMDK: neither a sparse header (KDMV) nor a "# Disk DescriptorFile" text descriptor', { file });
    }
    const st = await fh.stat();
    if (st.size > MAX_DESCRIPTOR_BYTES) throw new CorruptImage(`VMDK descriptor file of ${st.size} bytes is too large`, { file });
    const buf = Buffer.alloc(st.size);
    await fh.read(buf, 0, st.size, 0);
    const descriptor = parseDescriptor(buf, file);
    const capacity = descriptor.extents.reduce((a, e) => a + e.sectors, 0) * SECTOR;
    return { descriptor, capacity };
  } finally {
    await fh.close();
  }
}

/**
 * Follows parentFileNameHint from `top` to the base disk. Returns the layers top first.
 * Loops and chains deeper than the engine's limit are refused.
 */
export async function vmdkChain(top: string, policy: FileAccessPolicy): Promise<VmdkLayer[]> {
  const layers: VmdkLayer[] = [];
  const seen = new Set<string>();
  let cur = path.resolve(top);
  for (;;) {
    const real = await fs.realpath(cur).catch((err) => { throw ioError(err, cur, 'cannot open disk'); });
    if (seen.has(real)) throw new UnsafeImage(`VMDK snapshot chain loops back to ${path.basename(cur)}`, { file: top });
    if (layers.length >= MAX_CHAIN_DEPTH) throw new UnsafeImage(`VMDK snapshot chain deeper than ${MAX_CHAIN_DEPTH} disks`, { file: top });
    seen.add(real);
    const { descriptor, capacity } = await readVmdkDescriptor(cur);
    const layer: VmdkLayer = {
      path: cur,
      createType: descriptor.createType,
      capacity,
      adapterType: descriptor.values.get('ddb.adapterType'),
      parentFileNameHint: descriptor.parentFileNameHint,
    };
    layers.push(layer);
    if (!descriptor.parentFileNameHint) return layers;
    // The policy decides whether (and where) the parent may be opened.
    cur = policy.resolve(descriptor.parentFileNameHint, cur, 'parent');
  }
}
