/**
 * `POST /api/v1/reload` (operators: members of `admin.operators`): read and validate the
 * configuration file again and swap it in, as SIGHUP does (app.ts). 200 with what changed
 * and which keys need a restart; 422 with the reason when the file is refused (the running
 * configuration is kept). Both are audited by the reload itself.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ReloadResult } from '../config/reload.js';

export interface ReloadService {
  /** Reload on behalf of this operator. */
  run(identity: string): Promise<ReloadResult>;
  /** The groups allowed to reload (`admin.operators`). */
  operators(): readonly string[];
  /** Why this identity may not operate now (e.g. it is suspended), else undefined. */
  refused?(identity: string): string | undefined;
}

export function registerReloadRoutes(app: FastifyInstance, reload: ReloadService): void {
  const operatorsOnly = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const who = req.identity!;
    const refused = reload.refused?.(who.name);
    if (refused) {
      await reply.code(403).send({ error: refused });
      return;
    }
    const groups = reload.operators();
    if (who.groups.some((g) => groups.includes(g))) return;
    await reply.code(403).send({
      error:
        groups.length === 0
          ? 'reloading the configuration needs membership of a group listed in admin.operators (none is configured)'
          : `reloading the configuration needs membership of one of the groups ${groups.join(', ')} (admin.operators)`,
    });
  };
  app.post('/reload', { preHandler: operatorsOnly }, async (req, reply) => {
    const r = await reload.run(req.identity!.name);
    return reply.code(r.ok ? 200 : 422).send(r);
  });
}
