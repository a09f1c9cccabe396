import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SwaggerParser from '@apidevtools/swagger-parser';
import { LocalFleet } from '../harness/local-fleet.js';
import { apiRouter } from '../../src/api/server.js';
import { openApiPath } from '../../src/api/schemas/openapi.js';
import { createLogger } from '../../src/logger.js';
import type { RouteDeps } from '../../src/api/request.js';
import type { MetricsSource } from '../../src/domain/services.js';

const ADMIN = 'admin-token-for-openapi-tests';
const auth = { Authorization: `Bearer ${ADMIN}` };

type Doc = { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown }>>; components: { schemas: Record<string, Record<string, unknown>> } };

/** "METHOD /path" for every route the Koa router serves, read from its stack (HEAD comes with GET). */
function servedRoutes(): string[] {
  const deps = { service: {}, log: createLogger('openapi-test'), access: {}, role: { isLeader: () => true, leaderUrl: () => undefined } } as unknown as RouteDeps;
  const router = apiRouter(deps, {} as MetricsSource);
  return router.stack.flatMap((layer) => layer.methods.filter((m) => m !== 'HEAD').map((m) => `${m} ${openApiPath(String(layer.path))}`)).sort();
}

function documentedRoutes(doc: Doc): string[] {
  return Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`)).sort();
}

describe('OpenAPI document at /api/openapi.json, generated from the request schemas', function () {
  this.timeout(60_000);
  let fleet: LocalFleet;
  let doc: Doc;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redfleet-openapi-'));
    const tokenFile = join(dir, 'tokens');
    writeFileSync(tokenFile, `${ADMIN}\n`, { mode: 0o600 });
    fleet = await LocalFleet.start({ agents: 1, adminToken: ADMIN, schedulerArgs: ['--api-token-file', tokenFile] });
    const res = await fleet.api('GET', '/api/openapi.json');
    expect(res.status, res.text).to.equal(200);
    doc = res.json as Doc;
  });
  after(async () => {
    await fleet?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is served without a token and is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).to.equal('3.1.0');
    // validate() dereferences in place: give it a copy.
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('describes every route the router serves, and no other', () => {
    const served = servedRoutes();
    expect(served.length).to.be.greaterThan(15);
    expect(documentedRoutes(doc)).to.deep.equal(served);
  });

  it('describes the requests with the bounds the validation uses, and the answers', () => {
    const create = doc.components.schemas.CreateInstanceRequest as { additionalProperties: boolean; required: string[]; properties: Record<string, { minimum?: number; maximum?: number; type?: string }> };
    expect(create.additionalProperties).to.equal(false);
    expect(create.required).to.deep.equal(['name', 'capacityMb']);
    expect(create.properties.replicas).to.include({ type: 'integer', minimum: 0, maximum: 16 });
    expect(create.properties.downAfterMs).to.include({ minimum: 200, maximum: 60_000 });
    for (const name of ['Instance', 'Error', 'Agent', 'Backup', 'PatchInstanceRequest', 'FailoverRequest', 'UpgradeRequest', 'RebalanceRequest', 'BackupSchedule']) {
      expect(doc.components.schemas, name).to.have.property(name);
    }
  });

  it('refuses what the document refuses, with the error body {"error":{"code","message","field"}}', async () => {
    const cases: Array<[string, string, string]> = [
      ['{"name":"c1","capacityMb":"64"}', 'INVALID_NUMBER', 'capacityMb'],
      ['{"name":"c1","capacityMb":64.0}', 'INVALID_NUMBER', 'capacityMb'],
      ['{"name":"c1","capacityMb":1e1}', 'INVALID_NUMBER', 'capacityMb'],
      ['{"name":"c1","capacityMb":64,"evil":1}', 'UNKNOWN_FIELD', 'evil'],
      ['{"name":"c1","capacityMb":64,"replicas":17}', 'OUT_OF_RANGE', 'replicas'],
      ['{"name":"C1","capacityMb":64}', 'INVALID_NAME', 'name'],
      ['{"name":"c1","capacityMb":64,"backup":{"everyMinutes":5,"keep":1,"x":1}}', 'UNKNOWN_FIELD', 'backup.x'],
      ['[]', 'INVALID_BODY', 'body'],
    ];
    for (const [body, code, field] of cases) {
      const res = await fleet.api('POST', '/api/instances', body, auth);
      expect(res.status, body).to.equal(400);
      expect(res.json, body).to.have.nested.property('error.code', code);
      expect(res.json, body).to.have.nested.property('error.field', field);
      expect(res.json, body).to.have.nested.property('error.message').that.is.a('string');
    }
    const patch = await fleet.api('PATCH', '/api/instances/nope', '{"capacityMb":64,"replicas":1}', auth);
    expect(patch.status).to.equal(404);
    const rebalance = await fleet.api('POST', '/api/rebalance', '{"dryRun":"yes"}', auth);
    expect(rebalance.json).to.deep.equal({ error: { code: 'INVALID_BOOLEAN', field: 'dryRun', message: 'dryRun must be true or false, got "yes"' } });
    const drain = await fleet.api('POST', '/api/agents/..%2F/drain', undefined, auth);
    expect(drain.json).to.have.nested.property('error.code', 'INVALID_AGENT_ID');
  });
});
