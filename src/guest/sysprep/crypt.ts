// SHA-512 crypt ("$6$"), written from Ulrich Drepper's public specification "Unix crypt
// using SHA-256 and SHA-512", with node:crypto's SHA-512. glibc, musl and shadow-utils
// all accept these hashes in /etc/shadow.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { InvalidArgument } from '../../engine/errors.js';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;

function sha512(...parts: Buffer[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `len` bytes made of `digest` repeated (the spec's P and S sequences). */
function repeatTo(digest: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += 64) digest.copy(out, i, 0, Math.min(64, len - i));
  return out;
}

/** The byte triples of the final digest in the order the spec encodes them. */
const ORDER: Array<[number, number, number]> = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48],
  [28, 49, 7], [50, 8, 29], [9, 30, 51], [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13],
  [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60], [40, 61, 19], [62, 20, 41],
];

function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let s = '';
  for (let i = 0; i < n; i++) { s += ITOA64[w & 0x3f]; w >>>= 6; }
  return s;
}

/**
 * Hashes `password` with `salt` (at most 16 characters are used). `rounds` undefined
 * means the default 5000 and no "rounds=" field, like crypt(3).
 */
export function sha512Crypt(password: string, salt: string, rounds?: number): string {
  const P = Buffer.from(password, 'utf8');
  const saltStr = salt.slice(0, 16);
  if (/[$:\n]/.test(saltStr)) throw new InvalidArgument('crypt salt must not contain "$", ":" or newlines');
  const S = Buffer.from(saltStr, 'utf8');
  const r = rounds === undefined ? ROUNDS_DEFAULT : Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, Math.floor(rounds)));

  const B = sha512(P, S, P);
  const a = createHash('sha512');
  a.update(P); a.update(S);
  let n = P.length;
  for (; n > 64; n -= 64) a.update(B);
  a.update(B.subarray(0, n));
  for (let i = P.length; i > 0; i >>= 1) a.update(i & 1 ? B : P);
  const A = a.digest();

  const dpCtx = createHash('sha512');
  for (let i = 0; i < P.length; i++) dpCtx.update(P);
  const Pseq = repeatTo(dpCtx.digest(), P.length);

  const dsCtx = createHash('sha512');
  for (let i = 0; i < 16 + A[0]!; i++) dsCtx.update(S);
  const Sseq = repeatTo(dsCtx.digest(), S.length);

  let C = A;
  for (let i = 0; i < r; i++) {
    const c = createHash('sha512');
    c.update(i & 1 ? Pseq : C);
    if (i % 3) c.update(Sseq);
    if (i % 7) c.update(Pseq);
    c.update(i & 1 ? C : Pseq);
    C = c.digest();
  }

  let out = '';
  for (const [x, y, z] of ORDER) out += b64From24(C[x]!, C[y]!, C[z]!, 4);
  out += b64From24(0, 0, C[63]!, 2);
  const roundsField = rounds === undefined ? '' : `rounds=${r}$`;
  return `$6$${roundsField}${saltStr}$${out}`;
}

/** A random 16-character salt from the crypt alphabet. */
export function randomSalt(): string {
  const b = randomBytes(16);
  return [...b].map((x) => ITOA64[x & 0x3f]).join('');
}

/** A random password of `len` characters, avoiding look-alike characters. */
export function randomPassword(len = 16): string {
  const alphabet = 'abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}
