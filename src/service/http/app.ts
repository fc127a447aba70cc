// Builds the fastify application: content-type handling, routes, error mapping.
import Fastify, { type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { Service } from '../domain/service.js';
import { HttpError, sendError } from './errors.js';
import { registerImages } from './images.js';
import { registerData } from './data.js';
import { registerMembers } from './members.js';
import { registerInfo, versionsBody } from './info.js';
import { registerIdentityShim } from './identity-shim.js';

// Paths this API serves, with their methods: a known path asked with another method is
// 405 (as Glance's router answers), not 404.
const ID = '[^/]+';
const KNOWN: [RegExp, string][] = [
  [/^\/v2\/images\/?$/, 'GET, POST'],
  [new RegExp(`^/v2/images/${ID}$`), 'GET, PATCH, DELETE'],
  [new RegExp(`^/v2/images/${ID}/file$`), 'GET, PUT'],
  [new RegExp(`^/v2/images/${ID}/tags/${ID}$`), 'PUT, DELETE'],
  [new RegExp(`^/v2/images/${ID}/members$`), 'GET, POST'],
  [new RegExp(`^/v2/images/${ID}/members/${ID}$`), 'GET, PUT, DELETE'],
  [new RegExp(`^/v2/images/${ID}/actions/(deactivate|reactivate)$`), 'POST'],
  [/^\/v2\/schemas\/(image|images|member|members)$/, 'GET'],
];

export function buildApp(svc: Service): FastifyInstance {
  const cfg = svc.cfg;
  const app = Fastify({
    logger: cfg.logLevel === 'silent' ? false : { level: cfg.logLevel },
    bodyLimit: cfg.bodyLimit,
    // Uploads of large images take long; the request must not time out mid-stream.
    requestTimeout: 0,
    genReqId: () => `req-${randomUUID()}`,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 },
    serverFactory: (handler) => createServer({ maxHeaderSize: cfg.maxHeaderSize, requestTimeout: 0 }, handler),
  });

  // Hand every body to routes as the raw stream: JSON routes parse it with Glance's
  // messages, the data route streams it to the store.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.addHook('onSend', async (req, reply) => {
    reply.header('X-Openstack-Request-Id', req.id);
  });

  registerInfo(app, svc);
  registerImages(app, svc);
  registerData(app, svc);
  registerMembers(app, svc);
  if (cfg.auth === 'none') registerIdentityShim(app);

  app.setNotFoundHandler((req, reply) => {
    // Like Glance's version negotiation: an unversioned path gets the version list.
    if (!req.url.startsWith('/v2/') && req.url !== '/v2') return reply.code(300).send(versionsBody(req, cfg));
    const p = req.url.split('?')[0];
    const allow = KNOWN.find(([re]) => re.test(p))?.[1];
    if (allow) return sendError(req, reply, new HttpError(405, 'The method is not allowed for this resource.', { Allow: allow }));
    sendError(req, reply, new HttpError(404, 'The resource could not be found.'));
  });
  app.setErrorHandler((err, req, reply) => {
    sendError(req, reply, err);
  });
  return app;
}
