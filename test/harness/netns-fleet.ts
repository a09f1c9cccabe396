import { LocalFleet } from './local-fleet.js';
import { TestNetwork } from './netns.js';

/**
 * A fleet whose agents run on test hosts h1..hN of a fresh network namespace each (so a test can
 * cut one host off), with its scheduler on the host side. Everything started is stopped again if
 * the start fails; otherwise the caller stops the fleet and destroys the network.
 */
export async function startFleetOnTestHosts(hosts: number, adminToken: string, schedulerArgs: string[]): Promise<{ net: TestNetwork; fleet: LocalFleet }> {
  const net = TestNetwork.create();
  let fleet: LocalFleet | undefined;
  try {
    fleet = await LocalFleet.start({ agents: 0, adminToken, network: net, schedulerArgs: ['--api-token', adminToken, ...schedulerArgs] });
    for (let i = 1; i <= hosts; i++) await fleet.startAgent(`h${i}`, { host: net.addHost(`h${i}`) });
    const started = fleet;
    await started.waitFor(async () => (await started.api('GET', '/healthz')).json.agents === hosts, 20_000, `${hosts} agents on ${hosts} test hosts`);
    return { net, fleet };
  } catch (err) {
    await fleet?.stop();
    net.destroy();
    throw err;
  }
}
