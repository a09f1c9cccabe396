import { createServer, type Server } from 'node:http';
import { AgentEndpoint } from '../../src/scheduler/agent-endpoint.js';
import { OfferBroker } from '../../src/scheduler/broker.js';
import { createLogger } from '../../src/logger.js';

/** The agent endpoint and broker in-process on a loopback port, with no framework behind them. */
export interface EndpointServer {
  broker: OfferBroker;
  url: string;
  close(): Promise<void>;
}

/** Starts an endpoint that accepts agents proving any of `fleetKeys`. */
export async function startEndpointServer(fleetKeys: string[]): Promise<EndpointServer> {
  const log = createLogger('test');
  log.silent = true;
  const broker = new OfferBroker({ heartbeatSeconds: 1, agentTimeoutMs: 5000, frameworkId: 'fw' }, log);
  const endpoint = new AgentEndpoint(broker, log, fleetKeys);
  const server: Server = createServer((req, res) => void endpoint.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  return {
    broker,
    url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`,
    async close() {
      broker.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
