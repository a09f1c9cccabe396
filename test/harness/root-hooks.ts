import type { Context } from 'mocha';
import { liveFleetsReport } from './local-fleet.js';

/**
 * Mocha root hooks (loaded through .mocharc's `require`): when a test fails, print what the live
 * fleets' schedulers warned about, so a failure seen only in CI's output can still be explained.
 */
export const mochaHooks = {
  afterEach(this: Context) {
    if (this.currentTest?.state !== 'failed') return;
    const report = liveFleetsReport();
    if (report) console.log(report);
  },
};
