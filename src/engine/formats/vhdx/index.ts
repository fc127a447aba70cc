// VHDX: Microsoft's Hyper-V disk format (fixed, dynamic, differencing; log replayed in memory).
import type { FormatDriver, ProbeInput } from '../../block/device.js';
import { openVhdx } from './reader.js';
import { createVhdx, measureVhdx, vhdxLayout } from './writer.js';

function probe(input: ProbeInput): number {
  return input.head.length >= 8 && Buffer.from(input.head.subarray(0, 8)).toString('latin1') === 'vhdxfile' ? 100 : 0;
}

export const vhdxFormat: FormatDriver = {
  name: 'vhdx',
  description: 'Microsoft Hyper-V VHDX: fixed, dynamic, differencing',
  probe,
  open: openVhdx,
  create: createVhdx,
  measure: measureVhdx,
  allocationUnit: (options) => vhdxLayout(1, options).blockSize,
  // subformat=fixed streams (its layout is known up front); dynamic needs a seekable file.
  streamable: true,
  createOptions: [
    { name: 'subformat', type: 'enum', values: ['dynamic', 'fixed'], default: 'dynamic', help: 'dynamic (sparse) or fixed (every block written)' },
    { name: 'block_size', type: 'size', default: '0', help: 'block size, 1 MiB to 256 MiB; 0 = 8 MiB (32 MiB above 1 TiB, 64 MiB above 32 TiB)' },
    { name: 'log_size', type: 'size', default: '1M', help: 'log size (whole MiB)' },
  ],
};
