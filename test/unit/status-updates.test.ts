import { expect } from 'chai';
import { StatusUpdates } from '../../src/executor/status-updates.js';
import { pb } from '../../src/proto/messages.js';
import type { redfleet } from '../../src/proto/redfleet.js';
import type { Logger } from '../../src/logger.js';

const quiet = { info: () => undefined, warn: () => undefined, debug: () => undefined, error: () => undefined } as unknown as Logger;

describe('status updates (agent side)', () => {
  it('sends an update again only once its previous send was answered, until it is acknowledged', async () => {
    const sent: redfleet.v1.ICall[] = [];
    let answer: () => void = () => undefined;
    const channel = { subscribed: true, send: (call: redfleet.v1.ICall) => { sent.push(call); return new Promise<void>((r) => { answer = r; }); } };
    const updates = new StatusUpdates('a1', quiet, channel);
    updates.report('i::p', pb.TaskState.TASK_RUNNING);
    expect(sent).to.have.length(1);
    // A second later, the scheduler still has not answered: no resend stacked beside it.
    const status = updates.pending[0];
    status.timestamp = Date.now() / 1000 - 2;
    updates.resendUnacked();
    updates.resendUnacked();
    expect(sent).to.have.length(1);
    // Answered, but not acknowledged on the stream: sent again.
    answer();
    await new Promise((r) => setImmediate(r));
    updates.resendUnacked();
    expect(sent).to.have.length(2);
    answer();
    await new Promise((r) => setImmediate(r));
    updates.acknowledged(status.uuid as Uint8Array);
    updates.resendUnacked();
    expect(sent).to.have.length(2);
    expect(updates.pending).to.deep.equal([]);
  });
});
