// Sizes as qemu-img spells them: 512, 10k, 1.5G, 2T (binary multiples; "b" = bytes).
import { InvalidArgument } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60 };

/** Parses a size with an optional k/M/G/T/P/E suffix; refuses anything above 2^53 or fractional bytes. */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgtpe]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new InvalidArgument(`invalid ${what} '${text}' (use a number with an optional k, M, G or T suffix)`);
  const n = Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isFinite(n) || n > Number.MAX_SAFE_INTEGER) throw new InvalidArgument(`${what} '${text}' is too large`);
  if (!Number.isInteger(n)) throw new InvalidArgument(`${what} '${text}' is not a whole number of bytes`);
  return n;
}

/** qemu's human size: three significant digits and a binary unit ("1.25 MiB", "100 GiB", "0 B"). */
export function humanSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 * 0.975 && i < units.length - 1) { v /= 1024; i++; }
  const s = i === 0 ? String(v) : String(Number(v.toPrecision(3)));
  return `${s} ${units[i]}`;
}
