// The list of formats. Adding a format touches its folder and one line here.
import type { FormatDriver } from '../block/device.js';
import { raw } from './raw/index.js';

export const formats: FormatDriver[] = [
  raw,
];

export function findFormat(name: string): FormatDriver | undefined {
  return formats.find((f) => f.name === name);
}
