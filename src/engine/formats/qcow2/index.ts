// The qcow2 format driver (docs/interop/qcow2.txt): probe, open, create, measure.
//
//   header.ts          header + extensions: parse/validate, serialize
//   map.ts             L1/L2 guest-to-host mapping, L2 LRU, the walk read/extents/write share
//   compressed.ts      compressed cluster payloads (raw deflate, zstd), inline or on the pool
//   refcount.ts        refcount entries of any width, updates and end-of-file allocation
//   snapshot-table.ts  the internal snapshot table; snapshot.ts the SnapshotOps
//   device.ts          the opened image (read, extents, describe); write.ts in-place updates
//                      (write, resize, snapshots); check.ts consistency check and repair
//   create.ts          writing new images; options.ts create options and measure

import type { FormatDriver, ProbeInput } from '../../block/device.js';
import { QCOW2_MAGIC } from './constants.js';
import { Qcow2Device } from './device.js';
import { createOptions, measure } from './options.js';
import { createQcow2 } from './create.js';

function probe(input: ProbeInput): number {
  const h = input.head;
  if (h.length < 8) return 0;
  const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  if (dv.getUint32(0) !== QCOW2_MAGIC) return 0;
  const v = dv.getUint32(4);
  return v === 2 || v === 3 ? 100 : 0;
}

export const qcow2: FormatDriver = {
  name: 'qcow2',
  description: 'QEMU copy-on-write v2/v3',
  probe,
  open: (source, ctx) => Qcow2Device.open(source, ctx),
  create: createQcow2,
  createOptions,
  streamable: false,
  measure,
};
