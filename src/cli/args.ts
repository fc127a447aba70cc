// Argument parsing the way qemu-img reads them (getopt-like): "-f raw", "-fraw",
// "--output json", "--output=json", repeated "-o" merged, "--" ends options.
import { InvalidArgument } from '../engine/errors.js';

export interface OptSpec {
  /** Short letter, without the dash. */
  short?: string;
  /** Long name, without the dashes. */
  long?: string;
  /** Takes a value. */
  value?: boolean;
  /** Key in the result (defaults to long or short). */
  key?: string;
  /** May repeat (values collected). */
  multi?: boolean;
}

export interface Parsed {
  opts: Record<string, string | boolean | string[]>;
  positional: string[];
  help: boolean;
}

/** Options every verb accepts and ignores for qemu-img compatibility (-U: force share; cache modes). */
const IGNORED: OptSpec[] = [
  { short: 'U', long: 'force-share', key: '_ignored' },
  { short: 'q', long: 'quiet', key: 'quiet' },
];

export function parseArgs(argv: string[], specs: OptSpec[]): Parsed {
  const all = [...specs, ...IGNORED];
  const opts: Parsed['opts'] = {};
  const positional: string[] = [];
  let help = false;
  const keyOf = (s: OptSpec) => s.key ?? s.long ?? s.short!;
  const set = (s: OptSpec, v: string | boolean) => {
    const k = keyOf(s);
    if (s.multi) opts[k] = [...((opts[k] as string[] | undefined) ?? []), String(v)];
    else opts[k] = v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positional.push(...argv.slice(i + 1)); break; }
    if (a === '-h' || a === '--help') { help = true; continue; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const s = all.find((x) => x.long === name);
      if (!s) throw new InvalidArgument(`unknown option '--${name}'`);
      if (s.value) {
        const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
        if (v === undefined) throw new InvalidArgument(`option '--${name}' needs a value`);
        set(s, v);
      } else {
        if (eq >= 0) throw new InvalidArgument(`option '--${name}' takes no value`);
        set(s, true);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // A cluster of short flags; a flag taking a value consumes the rest or the next argument.
      for (let j = 1; j < a.length; j++) {
        const c = a[j]!;
        const s = all.find((x) => x.short === c);
        if (!s) throw new InvalidArgument(`unknown option '-${c}'`);
        if (s.value) {
          const v = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
          if (v === undefined) throw new InvalidArgument(`option '-${c}' needs a value`);
          set(s, v);
          break;
        }
        set(s, true);
      }
      continue;
    }
    positional.push(a);
  }
  return { opts, positional, help };
}

/** "-o a=b,c=d" (repeatable) into a record; "help" lists the options instead. */
export function parseKeyValues(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    // qemu escapes a comma inside a value as ",,".
    const parts = item.replace(/,,/g, '\u0000').split(',').map((p) => p.replace(/\u0000/g, ','));
    for (const p of parts) {
      if (p === '') continue;
      const eq = p.indexOf('=');
      if (eq <= 0) throw new InvalidArgument(`invalid option '${p}' (expected key=value)`);
      out[p.slice(0, eq)] = p.slice(eq + 1);
    }
  }
  return out;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** --output human|json */
export function outputMode(v: unknown): 'human' | 'json' {
  const s = str(v) ?? 'human';
  if (s !== 'human' && s !== 'json') throw new InvalidArgument(`--output must be 'human' or 'json', not '${s}'`);
  return s;
}

export function needPositional(p: string[], n: number, usage: string): void {
  if (p.length < n) throw new InvalidArgument(`missing argument\nusage: ${usage}`);
  if (p.length > n) throw new InvalidArgument(`unexpected argument '${p[n]}'\nusage: ${usage}`);
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 4) + '\n');
}
