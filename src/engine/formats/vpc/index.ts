// VHD ("vpc" in qemu): Microsoft's Virtual Hard Disk, fixed, dynamic and differencing.
import type { FormatDriver, ProbeInput } from '../../block/device.js';
import { openVpc } from './reader.js';
import { VPC_BLOCK_SIZE, createVpc, measureVpc } from './writer.js';

function probe(input: ProbeInput): number {
  const cookie = (b: Uint8Array, at: number) => at >= 0 && b.length >= at + 8 && Buffer.from(b.subarray(at, at + 8)).toString('latin1') === 'conectix';
  if (cookie(input.head, 0)) return 100;
  // Fixed disks only have the footer at the end.
  if (cookie(input.tail, input.tail.length - 512) || cookie(input.tail, input.tail.length - 511)) return 90;
  return 0;
}

export const vpcFormat: FormatDriver = {
  name: 'vpc',
  description: 'Microsoft Virtual Hard Disk (VHD): fixed, dynamic, differencing',
  probe,
  open: openVpc,
  create: createVpc,
  measure: measureVpc,
  // subformat=fixed streams (data, then the footer); dynamic needs a seekable file.
  streamable: true,
  // Fixed disks store bytes as they are; dynamic ones in 2 MiB blocks.
  allocationUnit: (options) => ((options.subformat ?? 'dynamic') === 'fixed' ? 512 : VPC_BLOCK_SIZE),
  createOptions: [
    { name: 'subformat', type: 'enum', values: ['dynamic', 'fixed'], default: 'dynamic', help: 'dynamic (sparse, grows) or fixed (raw data followed by the footer)' },
    { name: 'force_size', type: 'bool', default: 'off', help: 'keep the exact size instead of rounding to CHS geometry (creator "qem2"); use for Azure (whole MiB, fixed)' },
  ],
};
