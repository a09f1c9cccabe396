import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { composeProblems, parseUnit } from './deploy-schema.js';

/** The repository root: this file runs as dist/test/unit/deploy.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const DEPLOY = resolve(ROOT, 'deploy');
const COMPOSE = resolve(DEPLOY, 'compose.yaml');
const UNITS = ['redfleet-scheduler.service', 'redfleet-agent.service'];

function run(cmd: string, args: string[], cwd = ROOT): { ok: boolean; status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { ok: !r.error, status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function loadCompose(): Record<string, any> {
  return parse(readFileSync(COMPOSE, 'utf8'), { merge: true }) as Record<string, any>;
}

describe('deployment files (deploy/)', () => {
  it('compose.yaml passes `docker compose config`, or the key schema when docker compose is absent', function () {
    const probe = run('docker', ['compose', 'version']);
    if (probe.ok && probe.status === 0) {
      // config may check that the secret's file exists: a placeholder while it runs, if there is none.
      const key = resolve(DEPLOY, 'fleet.key');
      const placeholder = !existsSync(key);
      if (placeholder) writeFileSync(key, 'placeholder\n', { mode: 0o600 });
      try {
        const r = run('docker', ['compose', '-f', COMPOSE, 'config', '--quiet']);
        expect(r.status, r.out).to.equal(0);
      } finally {
        if (placeholder) rmSync(key);
      }
    } else {
      console.log(`      (docker compose is not available: ${probe.out.split('\n')[0] || 'no docker'}; checking against the key schema)`);
    }
    expect(composeProblems(loadCompose(), DEPLOY)).to.deep.equal([]);
  });

  it('the schema check catches the mistakes it is there for', () => {
    const doc = loadCompose();
    doc.services.agent1.restart = 'sometimes';
    delete doc.services.etcd1.healthcheck;
    doc.services.scheduler1.secrets = ['no_such_secret'];
    doc.services.agent2.depends_on = { schedulr1: { condition: 'service_healthy' } };
    doc.services.agent3.healtcheck = {};
    expect(composeProblems(doc, DEPLOY)).to.include.members([
      "services.agent1.restart: 'sometimes' is not one of no, always, on-failure, unless-stopped",
      'services.etcd1: needs a healthcheck',
      "services.scheduler1.secrets: 'no_such_secret' is not defined",
      "services.agent2.depends_on: no service 'schedulr1'",
      "services.agent3: unknown key 'healtcheck'",
    ]);
  });

  it('compose.yaml runs 3 etcd members, 2 schedulers and 3 agents, with the fleet key as a secret', () => {
    const doc = loadCompose();
    const names = Object.keys(doc.services);
    expect(names.filter((n) => n.startsWith('etcd'))).to.have.length(3);
    expect(names.filter((n) => n.startsWith('scheduler'))).to.have.length(2);
    expect(names.filter((n) => n.startsWith('agent'))).to.have.length(3);
    expect(doc.secrets.fleet_key.file).to.equal('./fleet.key');
    for (const n of names.filter((x) => !x.startsWith('etcd'))) {
      const svc = doc.services[n];
      expect(svc.secrets, n).to.deep.equal([{ source: 'fleet_key', target: 'fleet.key' }]);
      expect(svc.command.join(' '), n).to.include('--fleet-key /run/secrets/fleet.key');
      expect(svc.command.join(' '), n).to.include('--etcd http://etcd1:2379,http://etcd2:2379,http://etcd3:2379');
    }
    // The leader is announced at http://<hostname>:5656: the hostname must resolve on the network.
    for (const n of ['scheduler1', 'scheduler2']) expect(doc.services[n].hostname).to.equal(n);
    for (const n of ['etcd1', 'etcd2', 'etcd3']) {
      expect(doc.services[n].command).to.include('--initial-cluster=etcd1=http://etcd1:2380,etcd2=http://etcd2:2380,etcd3=http://etcd3:2380');
    }
  });

  it('both Dockerfiles have a HEALTHCHECK', () => {
    for (const f of ['Dockerfile.scheduler', 'Dockerfile.executor']) {
      expect(readFileSync(resolve(ROOT, f), 'utf8'), f).to.match(/^HEALTHCHECK .*\\\n\s+CMD \[/m);
    }
  });

  it('the systemd units restart always, are hardened and read the fleet key as a credential', () => {
    for (const name of UNITS) {
      const service = parseUnit(readFileSync(resolve(DEPLOY, 'systemd', name), 'utf8')).get('Service');
      const one = (k: string): string | undefined => service?.get(k)?.[0];
      expect(one('Restart'), name).to.equal('always');
      expect(one('NoNewPrivileges'), name).to.equal('yes');
      expect(one('ProtectSystem'), name).to.equal('strict');
      expect(one('ReadWritePaths'), name).to.equal('/var/lib/redfleet');
      expect(one('User'), name).to.equal('redfleet');
      expect(one('LoadCredential'), name).to.equal('fleet.key:/etc/redfleet/fleet.key');
      expect(one('ExecStart'), name).to.include('--fleet-key ${CREDENTIALS_DIRECTORY}/fleet.key');
    }
  });

  it('the systemd units pass `systemd-analyze verify` where it is available', function () {
    const probe = run('systemd-analyze', ['--version']);
    if (!probe.ok || probe.status !== 0) {
      console.log('      (skipped: systemd-analyze is not installed)');
      return this.skip();
    }
    const nodeMissing = !existsSync('/usr/bin/node');
    for (const name of UNITS) {
      const r = run('systemd-analyze', ['verify', '--man=no', resolve(DEPLOY, 'systemd', name)]);
      // verify warns (exit 0) about unknown keys and bad values: any output is a failure, except that
      // ExecStart's /usr/bin/node is absent on a machine where node lives elsewhere.
      const lines = r.out.split('\n').filter((l) => l.trim() !== '' && !(nodeMissing && l.includes('/usr/bin/node is not executable')));
      expect(lines, `${name}: ${r.out}`).to.deep.equal([]);
    }
  });
});
