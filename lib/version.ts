// This package's version, from the package.json above this file (lib/ in the repository, dist/lib/ when built).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

function read(): string {
  for (let dir = __dirname; dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return 'unknown';
}

export const packageVersion: string = read();
