// The config error a user sees for a bad environment: one line, naming the variable, with an example.
import { ConfigError, loadConfig } from '../../lib/config';

export function expectConfigError(env: Record<string, string>, variable: string, example: string): ConfigError {
  let error: unknown;
  try {
    loadConfig(env);
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(ConfigError);
  const e = error as ConfigError;
  expect(e).toMatchObject({ code: 'CONFIG_INVALID', field: variable });
  expect(e.message.startsWith(variable)).toBe(true);
  expect(e.message).not.toContain('\n');
  expect(e.hint).toContain(example);
  return e;
}
