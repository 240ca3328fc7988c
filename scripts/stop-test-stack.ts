// CI's safety net: if jest died before its teardown, stop what the last test run started, by pid.
import { existsSync } from 'node:fs';
import { readTestStack, stateFilePointer, stopTestStack } from '../test/support/stackState';

if (existsSync(stateFilePointer)) {
  const state = readTestStack();
  void stopTestStack(state).then(() => console.log(`stopped leftover test stack in ${state.dir}`));
}
