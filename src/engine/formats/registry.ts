// The list of formats. Adding a format touches its folder and one line here.
import type { FormatDriver } from '../block/device.js';

export const formats: FormatDriver[] = [
];

export function findFormat(name: string): FormatDriver | undefined {
  return formats.find((f) => f.name === name);
}
