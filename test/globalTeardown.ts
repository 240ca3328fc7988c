import { readTestStack, stopTestStack } from './support/stackState';

export default async function globalTeardown(): Promise<void> {
  await stopTestStack(readTestStack());
}
