import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { AgentEndpoint } from '../../src/scheduler/agent-endpoint.js';
import { OfferBroker } from '../../src/scheduler/broker.js';
import { createLogger } from '../../src/logger.js';
import { ProtocolAgent } from '../harness/protocol-agent.js';

/**
 * AgentInfo.hostname is the node's host name (the procs' Nodename) and AgentInfo.ip the address
 * its redis-servers listen on; an agent from before `ip` put its address in hostname.
 */
describe('agent endpoint: the announced host name and address', () => {
  const key = 'address-fleet-key-0123456789abcdef';
  let server: Server;
  let broker: OfferBroker;
  let url = '';
  const clients: ProtocolAgent[] = [];

  before(async () => {
    const log = createLogger('test');
    log.silent = true;
    broker = new OfferBroker({ heartbeatSeconds: 1, agentTimeoutMs: 5000, frameworkId: 'fw' }, log);
    const endpoint = new AgentEndpoint(broker, log, [key]);
    server = createServer((req, res) => void endpoint.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });

  after(async () => {
    for (const c of clients) c.close();
    broker.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  async function subscribe(id: string, info: { hostname: string; ip?: string }): Promise<number> {
    const agent = new ProtocolAgent(url, id, key);
    clients.push(agent);
    return agent.subscribe(await ProtocolAgent.sign(url, id, key, info));
  }

  it('takes the address from ip and keeps hostname as the host name', async () => {
    expect(await subscribe('named', { hostname: 'node-7.example', ip: '127.0.0.1' })).to.equal(200);
    const view = broker.agents().find((a) => a.id === 'named');
    expect(view).to.include({ hostname: 'node-7.example', ip: '127.0.0.1' });
  });

  it('takes the address from hostname when an older agent sends no ip', async () => {
    expect(await subscribe('older', { hostname: '127.0.0.1' })).to.equal(200);
    expect(broker.agents().find((a) => a.id === 'older')).to.include({ hostname: '127.0.0.1', ip: '127.0.0.1' });
  });

  it('refuses an ip that is not an IP literal, whatever hostname says', async () => {
    expect(await subscribe('bad-ip', { hostname: '127.0.0.1', ip: 'evil.example.com' })).to.equal(400);
    expect(broker.agents().find((a) => a.id === 'bad-ip')).to.equal(undefined);
  });
});
