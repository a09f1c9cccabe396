import { expect } from 'chai';
import { validateCreateBody, validatePatchBody, validateV1Body } from '../../src/api/validate.js';
import { validateBackupPatch } from '../../src/api/backup-input.js';
import { validateFailoverBody, validateRebalanceBody } from '../../src/api/switchover-routes.js';
import { validateUpgradeBody } from '../../src/api/maintenance-routes.js';
import { openApiDocument } from '../../src/api/schemas/openapi.js';

/** The refusal as the error body shows it, or 'ok'. */
function refusal(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    const e = err as { code: string; field: string; message: string };
    return `${e.code} ${e.field}: ${e.message}`;
  }
}

describe('request schemas (src/api/schemas): the refusals read as the hand-written checks had them', () => {
  const create = (body: unknown) => refusal(() => validateCreateBody(body, 1024));

  it('words every refusal of a create body as before', () => {
    expect(create([])).to.equal('INVALID_BODY body: body must be a JSON object like {"name":"cache1","capacityMb":64,"replicas":2}');
    expect(create({ name: 'c', capacityMb: 64, evil: 1, replicas: 99 })).to.equal("UNKNOWN_FIELD evil: unknown field 'evil'; allowed: name, capacityMb, replicas, distribution, ttlSeconds, placement, downAfterMs, minReplicasMaxLag, persistence, backup, restoreFrom");
    expect(create({ capacityMb: 64 })).to.match(/^INVALID_NAME name: name must be 1-63/);
    expect(create({ name: 'c', capacityMb: '64' })).to.equal('INVALID_NUMBER capacityMb: capacityMb must be a JSON integer from 1 to 1024 (no quotes, no fraction, no exponent), got "64"');
    expect(create({ name: 'c', capacityMb: 1e20 })).to.match(/^INVALID_NUMBER capacityMb/);
    expect(create({ name: 'c', capacityMb: 2048 })).to.equal('OUT_OF_RANGE capacityMb: capacityMb must be from 1 to 1024, got 2048');
    expect(create({ name: 'c', capacityMb: 64, placement: 'x' })).to.equal('INVALID_PLACEMENT placement: placement must be "spread" or "binpack"');
    expect(create({ name: 'c', capacityMb: 64, persistence: 'disk' })).to.equal('INVALID_PERSISTENCE persistence: persistence must be one of "none", "rdb", "aof", got "disk"');
    expect(create({ name: 'c', capacityMb: 64, backup: 5 })).to.match(/^INVALID_BACKUP_SCHEDULE backup: /);
    expect(create({ name: 'c', capacityMb: 64, backup: { everyMinutes: 1, keep: 1, x: 1 } })).to.equal("UNKNOWN_FIELD backup.x: unknown field 'backup.x'; allowed: everyMinutes, keep");
    expect(create({ name: 'c', capacityMb: 64, backup: { everyMinutes: 1 } })).to.match(/^INVALID_NUMBER backup.keep: /);
    expect(create({ name: 'c', capacityMb: 64, restoreFrom: 'a' })).to.match(/^INVALID_BACKUP_REF restoreFrom: /);
    expect(validateCreateBody({ name: 'c', capacityMb: 64, placement: null }, 1024).placement).to.equal('spread');
  });

  it('checks a PATCH: unknown fields, then across fields, then each field', () => {
    expect(refusal(() => validatePatchBody({ size: 1, capacityMb: 1, replicas: 1 }))).to.match(/^UNKNOWN_FIELD size: /);
    expect(refusal(() => validatePatchBody({}))).to.equal('MISSING_FIELD body: body must name at least one of ttlSeconds, capacityMb, replicas');
    expect(refusal(() => validatePatchBody({ capacityMb: 'x', replicas: 1 }))).to.match(/^ONE_CHANGE_AT_A_TIME replicas: /);
    expect(refusal(() => validatePatchBody({ ttlSeconds: 0 }))).to.match(/^OUT_OF_RANGE ttlSeconds: /);
    expect(refusal(() => validateBackupPatch({ backup: null, capacityMb: 5 }))).to.equal("UNKNOWN_FIELD capacityMb: a PATCH that sets backup takes no other field; send 'capacityMb' in its own PATCH");
  });

  it('checks the small bodies: v1, failover, rebalance, upgrade', () => {
    expect(refusal(() => validateV1Body({ Distribution: 0 }))).to.equal('OUT_OF_RANGE Distribution: Distribution must be from 1 to 17, got 0');
    expect(refusal(() => validateFailoverBody('c1', { to: 'c2::x' }))).to.equal('INVALID_PROC to: to must be a proc id of \'c1\' ("c1::<uuid>"), got "c2::x"');
    expect(validateFailoverBody('c1', { to: 'c1::0f0e0d0c-0b0a-4000-8000-000000000000' })).to.deep.equal({ to: 'c1::0f0e0d0c-0b0a-4000-8000-000000000000' });
    expect(refusal(() => validateRebalanceBody([]))).to.equal('INVALID_BODY body: body must be empty or a JSON object like {"dryRun":true}');
    expect(refusal(() => validateUpgradeBody({ redisServer: 'a\nb' }))).to.match(/^INVALID_REDIS_SERVER redisServer: /);
  });

  it('generates the document from the same schemas', () => {
    const doc = openApiDocument() as { components: { schemas: Record<string, { properties: Record<string, { minimum?: number; maximum?: number }> }> } };
    expect(doc.components.schemas.CreateInstanceRequest.properties.minReplicasMaxLag).to.include({ minimum: 1, maximum: 3600 });
    expect(doc.components.schemas.BackupSchedule.properties.keep).to.include({ minimum: 1, maximum: 1000 });
  });
});
