// The list of formats. Adding a format touches its folder and one line here.
import type { FormatDriver } from '../block/device.js';
import { raw } from './raw/index.js';
import { vpcFormat } from './vpc/index.js';
import { vmdkFormat } from './vmdk/index.js';
import { gzipFormat, xzFormat, zstdFormat, bzip2Format } from './compressed/index.js';
import { ovaFormat } from './ova/index.js';
import { qcow2 } from './qcow2/index.js';
import { vdiFormat } from './vdi/index.js';
import { vhdxFormat } from './vhdx/index.js';
import { isoFormat } from './iso/index.js';
import { qcowFormat } from './qcow/index.js';

export const formats: FormatDriver[] = [
  raw,
  vpcFormat,
  vmdkFormat,
  gzipFormat, xzFormat, zstdFormat, bzip2Format,
  ovaFormat,
  qcow2,
  vdiFormat,
  vhdxFormat,
  isoFormat,
  qcowFormat,
];

export function findFormat(name: string): FormatDriver | undefined {
  return formats.find((f) => f.name === name);
}
