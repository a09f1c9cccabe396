import { backupDue, backupsBeyond, backupTime } from '../domain/backup.js';
import { isServing } from '../domain/rules.js';
import type { Instance } from '../domain/model.js';
import type { FleetStore } from '../store/fleet-store.js';
import type { Logger } from '../logger.js';
import type { BackupStorage } from './backup-storage.js';
import type { Operations } from './operations.js';

/** How often the leader looks for due backups. */
const TICK_MS = 5000;

/**
 * Scheduled backups, on the leader: every few seconds each serving instance with a
 * `BackupSchedule` gets a 'backup' operation when its newest backup is `everyMinutes` old (or it
 * has none), and loses its backups beyond the newest `keep` (manual ones count too). What is due
 * is read from etcd (the schedule) and the storage (the newest backup), so it survives a change
 * of leader. A backup that cannot start (no replica in sync) is tried again a minute later.
 */
export class BackupSchedule {
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly lastTry = new Map<string, number>();

  constructor(
    private readonly store: FleetStore,
    private readonly storage: BackupStorage,
    private readonly operations: Operations,
    private readonly log: Logger,
    /** A minute's length: 60 000, shorter only where REDFLEET_BACKUP_MINUTE_MS says so (tests). */
    private readonly minuteMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), Math.min(TICK_MS, this.minuteMs));
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const inst of this.store.instances()) {
        if (inst.backupSchedule && isServing(inst)) await this.look(inst).catch((err: Error) => this.log.warn('scheduled backup check failed', { instance: inst.name, error: err.message }));
      }
    } finally {
      this.running = false;
    }
  }

  private async look(inst: Instance): Promise<void> {
    const schedule = inst.backupSchedule!;
    const backups = await this.storage.list(inst.name);
    if (!this.operations.runs(inst.name, 'backup')) {
      for (const old of backupsBeyond(backups, schedule.keep)) {
        await this.storage.delete(inst.name, old.id);
        this.log.info('old backup deleted by the schedule', { instance: inst.name, backup: old.id, keep: schedule.keep });
      }
    }
    const now = new Date();
    if (this.operations.runs(inst.name)) return;
    if (!backupDue(schedule, backups[0] ? backupTime(backups[0].id) : undefined, now, this.minuteMs)) return;
    if (now.getTime() - (this.lastTry.get(inst.name) ?? 0) < this.minuteMs) return;
    this.lastTry.set(inst.name, now.getTime());
    try {
      await this.operations.start(inst.name, 'backup', { scheduled: true });
    } catch (err) {
      this.log.warn('scheduled backup could not start', { instance: inst.name, error: (err as Error).message });
    }
  }
}
