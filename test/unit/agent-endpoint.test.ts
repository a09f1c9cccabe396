import { expect } from 'chai';
import { startEndpointServer, type EndpointServer } from '../harness/endpoint-server.js';
import { pb } from '../../src/proto/messages.js';
import { ProtocolAgent, postCall } from '../harness/protocol-agent.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** The endpoint and broker in-process, on a loopback port, with no framework behind them. */
describe('agent endpoint: fleet key rotation and sessions', () => {
  const current = 'current-fleet-key-0123456789abcdef';
  const previous = 'previous-fleet-key-0123456789abcdef';
  let endpoint: EndpointServer;
  let url = '';
  const clients: ProtocolAgent[] = [];

  before(async () => {
    endpoint = await startEndpointServer([current, previous]);
    url = endpoint.url;
  });

  after(async () => {
    for (const c of clients) c.close();
    await endpoint.close();
  });

  it('accepts agents proving either key and proves itself with the key each one used', async () => {
    for (const [id, key] of [['on-new', current], ['on-old', previous]]) {
      const agent = new ProtocolAgent(url, id, key);
      clients.push(agent);
      // ProtocolAgent checks the scheduler's proof and every frame's seal with its own key.
      expect(await agent.subscribe(await ProtocolAgent.sign(url, id, key, { hostname: '127.0.0.1' })), id).to.equal(200);
      // The first event arrives on the stream after the 200: wait for it.
      const deadline = Date.now() + 5000;
      while (agent.events.length === 0 && Date.now() < deadline) await sleep(10);
      expect(agent.events[0]?.type, id).to.equal(pb.Event.Type.SUBSCRIBED);
      expect((await agent.call({ type: pb.Call.Type.HEARTBEAT })).status).to.equal(202);
    }
    const stranger = await ProtocolAgent.sign(url, 'stranger', 'some-third-key-0123456789abcdef', { hostname: '127.0.0.1' });
    expect((await postCall(url, stranger.body, stranger.headers)).status).to.equal(401);
  });

  it('ends a session with its stream', async () => {
    const agent = new ProtocolAgent(url, 'shortlived', current);
    expect(await agent.subscribe(await ProtocolAgent.sign(url, 'shortlived', current, { hostname: '127.0.0.1' }))).to.equal(200);
    expect((await agent.call({ type: pb.Call.Type.HEARTBEAT })).status).to.equal(202);
    agent.close();
    // The endpoint learns of the closed stream asynchronously: ask until it answers otherwise.
    const deadline = Date.now() + 5000;
    let status = (await agent.call({ type: pb.Call.Type.HEARTBEAT })).status;
    while (status === 202 && Date.now() < deadline) {
      await sleep(25);
      status = (await agent.call({ type: pb.Call.Type.HEARTBEAT })).status;
    }
    expect(status).to.equal(401);
  });

  it('hands out a fresh random nonce each time', async () => {
    const a = await ProtocolAgent.challenge(url);
    const b = await ProtocolAgent.challenge(url);
    expect(a).to.not.equal(b);
    expect(a).to.match(/^[A-Za-z0-9_-]{32}$/);
  });
});
