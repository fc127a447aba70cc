// The .vmx text format: `key = "value"` lines with case-insensitive dotted keys,
// `|XX` hex escapes in values, comments, and `<ns>.present = "FALSE"` switching a whole
// device namespace off. This module only reads the key/value layer; vmx.ts gives it meaning.

import { InvalidArgument } from '../engine/errors.js';

export interface VmxFile {
  /** Lower-cased key → unescaped value, first occurrence wins (VMware reads it that way too). */
  readonly values: Map<string, string>;
  readonly warnings: string[];
  get(key: string): string | undefined;
  /** TRUE/true/yes/1 → true, FALSE/false/no/0 → false, else undefined. */
  bool(key: string): boolean | undefined;
  /** Decimal integer, or undefined if absent or not a number (warns). */
  int(key: string): number | undefined;
  /** Is `ns` (e.g. 'ethernet0', 'scsi0:1') mentioned with at least one key? */
  has(ns: string): boolean;
}

/** `|22` → `"`, `|7C` → `|`; the bytes are UTF-8. A `|` not followed by two hex digits stays. */
export function unescapeVmx(s: string): string {
  if (!s.includes('|')) return s;
  const bytes: number[] = [];
  const enc = new TextEncoder();
  for (let i = 0; i < s.length; ) {
    if (s[i] === '|' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      const cp = s.codePointAt(i)!;
      const ch = String.fromCodePoint(cp);
      bytes.push(...enc.encode(ch));
      i += ch.length;
    }
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

const LINE = /^([^\s=]+)\s*=\s*(.*?)\s*$/;

export function parseVmxText(text: string, file: string): VmxFile {
  const head = text.slice(0, 32);
  if (head.startsWith('KDMV') || head.startsWith('VMDK') || /^#\s*Disk DescriptorFile/.test(head)) {
    throw new InvalidArgument('this is a VMDK disk image, not a .vmx file; pass the .vmx that uses it', { file });
  }
  if (text.includes('\0')) throw new InvalidArgument('not a .vmx file: it contains NUL bytes', { file });

  const raw = new Map<string, string>();
  const warnings: string[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((line, n) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const m = LINE.exec(t);
    if (!m) {
      warnings.push(`${file}:${n + 1}: ignored line that is not key = "value": ${t.slice(0, 60)}`);
      return;
    }
    const key = m[1].toLowerCase();
    let v = m[2];
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    else if (v.startsWith('"')) {
      warnings.push(`${file}:${n + 1}: unterminated quote in value of ${m[1]}`);
      v = v.slice(1);
    }
    if (raw.has(key)) {
      warnings.push(`${file}:${n + 1}: duplicate key ${m[1]}; the first value is used`);
      return;
    }
    raw.set(key, unescapeVmx(v));
  });

  // `ns.present = "FALSE"` removes ns and everything under it (ns.x, ns:y.z when ns is
  // a controller: a disk cannot sit on a controller that is not there).
  const absent: string[] = [];
  for (const [k, v] of raw) {
    if (k.endsWith('.present') && isFalse(v)) absent.push(k.slice(0, -'.present'.length));
  }
  const values = new Map<string, string>();
  for (const [k, v] of raw) {
    if (absent.some((ns) => k.startsWith(ns + '.') || k.startsWith(ns + ':'))) continue;
    values.set(k, v);
  }

  const api: VmxFile = {
    values,
    warnings,
    get: (key) => values.get(key.toLowerCase()),
    bool(key) {
      const v = values.get(key.toLowerCase());
      if (v === undefined) return undefined;
      if (isTrue(v)) return true;
      if (isFalse(v)) return false;
      warnings.push(`${file}: ${key} = "${v}" is not a boolean; ignored`);
      return undefined;
    },
    int(key) {
      const v = values.get(key.toLowerCase());
      if (v === undefined || v.trim() === '') return undefined;
      if (!/^\s*-?\d+\s*$/.test(v)) {
        warnings.push(`${file}: ${key} = "${v}" is not a number; ignored`);
        return undefined;
      }
      return Number(v.trim());
    },
    has(ns) {
      const p = ns.toLowerCase() + '.';
      for (const k of values.keys()) if (k.startsWith(p)) return true;
      return false;
    },
  };
  return api;
}

function isTrue(v: string): boolean { return /^(true|yes|1)$/i.test(v.trim()); }
function isFalse(v: string): boolean { return /^(false|no|0)$/i.test(v.trim()); }
