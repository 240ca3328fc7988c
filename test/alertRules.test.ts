// The Prometheus alert rules in ops/prometheus parse (promtool check rules), fire on the situations their unit tests
// describe and stay quiet otherwise (promtool test rules), and name only metrics the workers export.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../scripts/stack';
import { metricNames } from '../workers/metrics';

const dir = join(projectRoot, 'ops', 'prometheus');
const promtool = (...args: string[]) => spawnSync('promtool', args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });

test('promtool checks the alert rules and passes their unit tests', () => {
  const check = promtool('check', 'rules', 'alerts.yml');
  expect(check.stderr + check.stdout).toMatch(/SUCCESS: \d+ rules found/);
  expect(check.status).toBe(0);
  const unit = promtool('test', 'rules', 'alerts.test.yml');
  expect(unit.stdout + unit.stderr).toMatch(/SUCCESS/);
  expect(unit.status).toBe(0);
});

test('the rules name only metrics snapflow exports', () => {
  const rules = readFileSync(join(dir, 'alerts.yml'), 'utf8');
  const named = new Set(rules.match(/\bsnapflow_[a-z0-9_]+/g) ?? []);
  const exported = new Set(Object.values(metricNames).flatMap((name) => [name, `${name}_count`, `${name}_sum`, `${name}_bucket`]));
  expect(named.size).toBeGreaterThan(4);
  expect([...named].filter((name) => !exported.has(name))).toEqual([]);
});
