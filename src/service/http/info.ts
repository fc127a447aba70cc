// Version discovery and schemas.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Service } from '../domain/service.js';
import { baseUrl } from './images.js';
import { imageSchema, imagesSchema, memberSchema, membersSchema } from './schemas.js';

// What Glance 25 advertises (v2.15 current; v2.8 and older minors supported).
const VERSIONS: [string, string][] = [
  ['v2.15', 'CURRENT'], ['v2.9', 'SUPPORTED'], ['v2.7', 'SUPPORTED'], ['v2.6', 'SUPPORTED'], ['v2.5', 'SUPPORTED'],
  ['v2.4', 'SUPPORTED'], ['v2.3', 'SUPPORTED'], ['v2.2', 'SUPPORTED'], ['v2.1', 'SUPPORTED'], ['v2.0', 'SUPPORTED'],
];

export function versionsBody(req: FastifyRequest, cfg: Service['cfg']): object {
  const href = `${baseUrl(req, cfg)}/v2/`;
  return { versions: VERSIONS.map(([id, status]) => ({ id, status, links: [{ rel: 'self', href }] })) };
}

export function registerInfo(app: FastifyInstance, svc: Service): void {
  const versions = (req: FastifyRequest) => versionsBody(req, svc.cfg);
  // Glance answers 300 Multiple Choices at the root and 200 at /versions.
  const root = async (req: FastifyRequest, reply: FastifyReply) => reply.code(300).send(versions(req));
  app.get('/', root);
  app.get('/v2', root);
  app.get('/versions', async (req) => versions(req));
  const image = imageSchema(), images = imagesSchema(), member = memberSchema(), members = membersSchema();
  app.get('/v2/schemas/image', async () => image);
  app.get('/v2/schemas/images', async () => images);
  app.get('/v2/schemas/member', async () => member);
  app.get('/v2/schemas/members', async () => members);
}
