import { expect } from 'chai';
import type { OfferBroker } from '../../src/scheduler/broker.js';
import { startEndpointServer, type EndpointServer } from '../harness/endpoint-server.js';
import { ProtocolAgent } from '../harness/protocol-agent.js';

/**
 * AgentInfo.hostname is the node's host name (the procs' Nodename) and AgentInfo.ip the address
 * its redis-servers listen on; an agent from before `ip` put its address in hostname.
 */
describe('agent endpoint: the announced host name and address', () => {
  const key = 'address-fleet-key-0123456789abcdef';
  let endpoint: EndpointServer;
  let broker: OfferBroker;
  let url = '';
  const clients: ProtocolAgent[] = [];

  before(async () => {
    endpoint = await startEndpointServer([key]);
    broker = endpoint.broker;
    url = endpoint.url;
  });

  after(async () => {
    for (const c of clients) c.close();
    await endpoint.close();
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
