// Jest's order, except that the history scan runs last: it reads every workflow the other files ran.
import TestSequencer from '@jest/test-sequencer';

const Base = TestSequencer.default ?? TestSequencer;

export default class LastIsHistoryScan extends Base {
  sort(tests) {
    const sorted = super.sort(tests);
    const last = (t) => (t.path.endsWith('historyScan.e2e.test.ts') ? 1 : 0);
    return [...sorted].sort((a, b) => last(a) - last(b));
  }
}
