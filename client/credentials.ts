// `snapflow login` keeps the API URL and token in a file only its user can read (0600 under ~/.config/snapflow),
// like `gh auth login`; SNAPFLOW_API_URL and SNAPFLOW_TOKEN in the environment win over it.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ApiCredentials {
  url: string;
  token: string;
}

export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'snapflow', 'credentials.json');
}

/** The API to talk to, if any: both variables, or the login file. */
export function apiCredentials(env: NodeJS.ProcessEnv = process.env): ApiCredentials | undefined {
  if (env.SNAPFLOW_API_URL && env.SNAPFLOW_TOKEN) return { url: env.SNAPFLOW_API_URL, token: env.SNAPFLOW_TOKEN };
  const file = credentialsPath(env);
  if (!existsSync(file)) return undefined;
  const saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<ApiCredentials>;
  if (typeof saved.url !== 'string' || typeof saved.token !== 'string') return undefined;
  return { url: env.SNAPFLOW_API_URL || saved.url, token: env.SNAPFLOW_TOKEN || saved.token };
}

export function saveCredentials(credentials: ApiCredentials, env: NodeJS.ProcessEnv = process.env): string {
  const file = credentialsPath(env);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify(credentials)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // an existing file keeps its mode on write
  return file;
}

export function removeCredentials(env: NodeJS.ProcessEnv = process.env): boolean {
  const file = credentialsPath(env);
  if (!existsSync(file)) return false;
  rmSync(file);
  return true;
}
