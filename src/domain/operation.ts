/**
 * Day-2 operations (resize, scale, switchover, upgrade, backup, restore, move ...): one at a time
 * per instance, each recorded as JSON in the instance's `Operation` key, so `etcdctl` shows what
 * runs and a scheduler that takes over after a restart resumes it from its checkpoint. Pure.
 */

export type OperationKind = 'resize' | 'scale' | 'switchover' | 'upgrade' | 'backup' | 'restore' | 'move' | 'drain';

export enum OperationState {
  Running = 'running',
  Done = 'done',
  Failed = 'failed',
}

export interface Operation {
  /** A uuid; `--wait` follows the operation by it. */
  id: string;
  kind: OperationKind;
  state: OperationState;
  /** What it is doing now (or did last), one line for the status and the progress line. */
  step: string;
  /** What was asked, as the API validated it. */
  params: Record<string, unknown>;
  /**
   * The handler's checkpoint: what it has done so far, written before each step's effect, so a
   * resumed run knows where to go on from (or what to roll back).
   */
  data: Record<string, unknown>;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** Why it failed, when it did. */
  error?: string;
}

/** The Operation key's text as an Operation; undefined for none or for text that is not one. */
export function parseOperation(text: string | undefined): Operation | undefined {
  if (!text) return undefined;
  try {
    const op = JSON.parse(text) as Operation;
    return typeof op?.id === 'string' && typeof op.kind === 'string' && typeof op.state === 'string' ? op : undefined;
  } catch {
    return undefined;
  }
}

export function isOperationRunning(op: Operation | undefined): op is Operation {
  return op?.state === OperationState.Running;
}
