// Judging file names found inside images. The inspector never opens them; it only says
// whether a name could point anywhere but at the image's own bytes.

/** Why a reference name is dangerous even when references are allowed, or null. */
export function dangerousName(name: string): string | null {
  if (name.length === 0) return 'empty name';
  if (/[\x00-\x1f\x7f]/.test(name)) return 'control characters in the name';
  if (/^[a-z][a-z0-9+.-]*:/i.test(name)) return 'a protocol or json: pseudo-path';
  if (name.startsWith('/') || name.startsWith('\\') || /^[a-z]:[\\/]/i.test(name)) return 'an absolute path';
  if (name.split(/[\\/]/).includes('..')) return "a path with '..'";
  return null;
}

/** A bare file name: no directory part at all. */
export function isBareName(name: string): boolean {
  return dangerousName(name) === null && !/[\\/]/.test(name) && name !== '.';
}
