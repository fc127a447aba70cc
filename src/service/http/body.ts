// Request bodies. Every content type is handed to routes as the raw stream (see
// app.ts), so each route decides: JSON routes read a bounded body and parse it with
// Glance's error messages; the data route streams.
import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { HttpError } from './errors.js';

export function bodyStream(req: FastifyRequest): Readable {
  return (req.body as Readable | undefined) ?? req.raw;
}

export async function readText(req: FastifyRequest, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of bodyStream(req)) {
    n += (c as Buffer).length;
    if (n > limit) throw new HttpError(413, 'Request Entity Too Large');
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses a JSON body; undefined when there is none ("Body expected in request."). */
export async function readJson(req: FastifyRequest, limit: number): Promise<unknown> {
  const text = await readText(req, limit);
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'Malformed JSON in request body.');
  }
}

export function mediaType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}
