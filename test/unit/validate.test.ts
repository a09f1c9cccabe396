import { expect } from 'chai';
import { validateCreateBody, validateName, validateInt, validateV1Body } from '../../src/api/validate.js';
import { InvalidInputError } from '../../src/errors.js';
import { renderRedisConfig, parseInfo, statsFromInfo } from '../../src/executor/redis-config.js';

describe('input validation', () => {
  it('accepts DNS-label names and refuses the rest by field', () => {
    expect(validateName('cache-1')).to.equal('cache-1');
    for (const bad of ['', 'A', '-a', 'a-', 'a/b', '..', 'a'.repeat(64), 'a b', 'a::b']) {
      expect(() => validateName(bad), bad).to.throw(InvalidInputError).with.property('field', 'name');
    }
  });

  it('takes only decimal integers within bounds', () => {
    expect(validateInt('64', 'capacity', 1, 1024)).to.equal(64);
    expect(validateInt(2, 'replicas', 0, 16)).to.equal(2);
    for (const bad of ['abc', '1.5', '', '0x10', '1e3', ' 1', 1.5, null, '99999999999999999999']) {
      expect(() => validateInt(bad, 'capacity', 1, 1024), String(bad)).to.throw(InvalidInputError, /capacity/);
    }
    expect(() => validateInt('0', 'capacity', 1, 1024)).to.throw(/from 1 to 1024/);
  });

  it('checks the JSON create body against its schema', () => {
    expect(validateCreateBody({ name: 'c', capacityMb: 64, replicas: 2 }, 1024)).to.include({ name: 'c', capacityMb: 64, replicas: 2, distribution: 1, placement: 'spread' });
    expect(() => validateCreateBody({ name: 'c', capacityMb: 64, evil: 1 }, 1024)).to.throw(/unknown field 'evil'/);
    expect(() => validateCreateBody({ name: 'c', capacityMb: 2048 }, 1024)).to.throw(/capacityMb must be from 1 to 1024/);
    expect(() => validateCreateBody({ name: 'c', capacityMb: 64, replicas: 17 }, 1024)).to.throw(/replicas/);
    expect(() => validateCreateBody([], 1024)).to.throw(/JSON object/);
    expect(validateCreateBody({ name: 'c', capacityMb: 64, downAfterMs: 500, minReplicasMaxLag: 2 }, 1024)).to.include({ downAfterMs: 500, minReplicasMaxLag: 2 });
    expect(() => validateCreateBody({ name: 'c', capacityMb: 64, downAfterMs: 10 }, 1024)).to.throw(/downAfterMs must be from 200/);
    expect(() => validateV1Body({ Distribution: 0 })).to.throw(/Distribution/);
    expect(validateV1Body({ Distribution: 2, TTL: 60 })).to.deep.equal({ distribution: 2, ttlSeconds: 60 });
  });
});

describe('redis-server configuration', () => {
  it('configures memory, diskless sync with no delay, no persistence, and hashed users only', () => {
    const conf = renderRedisConfig({ ip: '127.0.0.1', port: 7000, dir: '/tmp/x', capacityMb: 64, passwordSha256: 'f'.repeat(64), frameworkSecret: 'fw-secret', replicaPriority: 100, minReplicasToWrite: 1, minReplicasMaxLag: 3, maxClients: 100 });
    expect(conf).to.match(/^maxclients 100$/m);
    expect(conf).to.match(/^min-replicas-to-write 1$/m);
    expect(conf).to.match(/^maxmemory 64mb$/m);
    expect(conf).to.match(/^repl-diskless-sync-delay 0$/m);
    expect(conf).to.match(/^save ""$/m);
    expect(conf).to.match(/^user default on resetpass #f{64} ~\* &\* \+@all -@admin -@dangerous /m);
    expect(conf).to.match(/^user redfleet on resetpass #[0-9a-f]{64} /m);
    expect(conf).not.to.match(/requirepass/);
  });

  it('turns INFO into the Stats JSON', () => {
    const info = parseInfo('# Server\r\nuptime_in_seconds:12\r\n# Replication\r\nrole:slave\r\nmaster_link_status:up\r\nslave_repl_offset:99\r\nused_memory:1000\r\nconnected_clients:3\r\n');
    const stats = statsFromInfo(info, new Date(0));
    expect(stats).to.include({ uptime: 12, role: 'slave', masterLinkStatus: 'up', replOffset: 99, usedMemory: 1000, clients: 3, updatedAt: '1970-01-01T00:00:00.000Z' });
  });
});
