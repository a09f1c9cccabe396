import type { Instance, Proc } from '../domain/model.js';
import { busyThresholdOf, isRunning } from '../domain/rules.js';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis-links.js';

/**
 * A tenant's script (or function) that holds a proc: the failure detector must tell such a busy
 * master from a dead one, so each proc answers -BUSY early, and a busy master's script is killed
 * as Sentinel does.
 */
export class BusyScripts {
  /** The busy-reply threshold each proc was given, so it is set once per proc. */
  private readonly thresholdSet = new Map<string, number>();

  constructor(private readonly links: RedisLinks, private readonly log: Logger) {}

  /**
   * A tenant's script must answer -BUSY well before down-after, so the detector can tell a busy
   * master from a dead one and kill the script in time. redis.conf's default is 5 s; the
   * framework link sets it at run time (lua-time-limit is the name Redis 6.2 and 7 both know).
   */
  async applyThreshold(inst: Instance, proc: Proc): Promise<void> {
    const want = busyThresholdOf(inst);
    if (this.thresholdSet.get(proc.id) === want || !isRunning(proc)) return;
    this.thresholdSet.set(proc.id, want);
    const { reply } = await this.links.probe(proc, 'CONFIG', 'SET', 'lua-time-limit', String(want));
    if (reply !== 'OK') this.thresholdSet.delete(proc.id);
  }

  /**
   * The master is alive but held by a tenant's script (or function). Kill it once per busy spell,
   * as Sentinel does. A script that has already written cannot be killed (UNKILLABLE): the master
   * then stays without a valid reply, and once that lasts down-after and the replicas have lost
   * it too, it is failed over like a frozen master, since only SHUTDOWN NOSAVE can end it.
   * `spell.scriptKillSent` is cleared by the master's next valid reply.
   */
  async kill(inst: Instance, master: Proc, spell: { scriptKillSent: boolean }): Promise<void> {
    if (spell.scriptKillSent) return;
    spell.scriptKillSent = true;
    const [script, fn] = await Promise.all([
      this.links.probe(master, 'SCRIPT', 'KILL'),
      this.links.probe(master, 'FUNCTION', 'KILL'),
    ]);
    const outcome = script.reply === 'OK' || fn.reply === 'OK' ? 'killed' : (script.error ?? fn.error ?? 'no answer');
    this.log.warn('master busy with a script; sent SCRIPT KILL and FUNCTION KILL', { instance: inst.name, proc: master.id, outcome });
  }

  /** Forgets the procs the detector no longer watches. */
  retain(watched: Set<string>): void {
    for (const id of this.thresholdSet.keys()) if (!watched.has(id)) this.thresholdSet.delete(id);
  }
}
