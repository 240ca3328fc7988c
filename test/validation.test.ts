// A create request is checked before anything is written: image references by the distribution grammar,
// every field by its rule, hostile strings refused with a short message naming the field.
import { SNAPSHOT_NAME_PATTERN } from '../db/schema';
import { SnapflowError } from '../lib/errors';
import { formatImageRef, isFloatingTag, parseImageRef, type ImageRef } from '../lib/imageRef';
import { SNAPSHOT_NAME_REGEX, nextVersionedName, validateCreateImageSnapshot, type CreateImageSnapshotInput } from '../lib/validation';

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const good: CreateImageSnapshotInput = {
  workspace: 'acme',
  name: 'agent-base-v3',
  image: 'ghcr.io/org/image:v1',
  runtime: 'codex',
  size: 'small',
};

function refusal(run: () => unknown): SnapflowError {
  try {
    run();
  } catch (err) {
    if (err instanceof SnapflowError) return err;
    throw err;
  }
  throw new Error('expected a SnapflowError, but nothing was thrown');
}

describe('parseImageRef', () => {
  test.each<[string, ImageRef, string]>([
    ['ubuntu', { registry: 'docker.io', repository: 'library/ubuntu' }, 'docker.io/library/ubuntu'],
    ['node:20-slim', { registry: 'docker.io', repository: 'library/node', tag: '20-slim' }, 'docker.io/library/node:20-slim'],
    ['bitnami/redis:7.2', { registry: 'docker.io', repository: 'bitnami/redis', tag: '7.2' }, 'docker.io/bitnami/redis:7.2'],
    ['docker.io/ubuntu:24.04', { registry: 'docker.io', repository: 'library/ubuntu', tag: '24.04' }, 'docker.io/library/ubuntu:24.04'],
    ['index.docker.io/org/app:v1', { registry: 'docker.io', repository: 'org/app', tag: 'v1' }, 'docker.io/org/app:v1'],
    ['ghcr.io/org/image:v1', { registry: 'ghcr.io', repository: 'org/image', tag: 'v1' }, 'ghcr.io/org/image:v1'],
    ['GHCR.io/org/image:v1', { registry: 'ghcr.io', repository: 'org/image', tag: 'v1' }, 'ghcr.io/org/image:v1'],
    ['127.0.0.1:5000/team/app:1.2', { registry: '127.0.0.1:5000', repository: 'team/app', tag: '1.2' }, '127.0.0.1:5000/team/app:1.2'],
    ['registry.example.com:8443/a/b/c', { registry: 'registry.example.com:8443', repository: 'a/b/c' }, 'registry.example.com:8443/a/b/c'],
    ['localhost/x:1', { registry: 'localhost', repository: 'x', tag: '1' }, 'localhost/x:1'],
    ['localhost:5000/x', { registry: 'localhost:5000', repository: 'x' }, 'localhost:5000/x'],
    ['[::1]:5000/x:v1', { registry: '[::1]:5000', repository: 'x', tag: 'v1' }, '[::1]:5000/x:v1'],
    [
      'ghcr.io/org/my_app.v2__x-y:V1_rc.1',
      { registry: 'ghcr.io', repository: 'org/my_app.v2__x-y', tag: 'V1_rc.1' },
      'ghcr.io/org/my_app.v2__x-y:V1_rc.1',
    ],
    [
      `ghcr.io/org/image:v1@${DIGEST}`,
      { registry: 'ghcr.io', repository: 'org/image', tag: 'v1', digest: DIGEST },
      `ghcr.io/org/image:v1@${DIGEST}`,
    ],
    [`ghcr.io/org/image@${DIGEST}`, { registry: 'ghcr.io', repository: 'org/image', digest: DIGEST }, `ghcr.io/org/image@${DIGEST}`],
    [`alpine@${DIGEST}`, { registry: 'docker.io', repository: 'library/alpine', digest: DIGEST }, `docker.io/library/alpine@${DIGEST}`],
  ])('%s parses to its parts', (input, expected, canonical) => {
    const ref = parseImageRef(input);
    expect(ref).toEqual(expected);
    expect(formatImageRef(ref)).toBe(canonical);
    expect(parseImageRef(canonical)).toEqual(expected); // the canonical form is a fixed point
  });

  test.each<[string, string]>([
    ['', 'image reference is empty'],
    ['   ', 'image reference is empty'],
    ['Ubuntu:22.04', 'must be lowercase'],
    ['ghcr.io/Org/image:v1', 'must be lowercase'],
    ['ubuntu 22.04', 'contains whitespace'],
    [':v1', 'has no repository name'],
    [`@${DIGEST}`, 'has no repository name'],
    ['ubuntu:', 'has an empty tag'],
    ['ubuntu:-rc', 'has an invalid tag "-rc"'],
    ['ubuntu:a:b', 'has an invalid tag "a:b"'],
    [`ubuntu:${'t'.repeat(129)}`, 'has an invalid tag'],
    ['ubuntu@sha256:abc', 'has an invalid digest "sha256:abc"'],
    [`ubuntu@sha256:${'A'.repeat(64)}`, 'has an invalid digest'],
    [`ubuntu@${DIGEST}0`, 'has an invalid digest'],
    [`ubuntu@${DIGEST}@${DIGEST}`, 'has an invalid digest'],
    ['a//b', 'has an empty path component'],
    ['/ubuntu', 'has an empty path component'],
    ['ghcr.io/org/', 'has an empty path component'],
    ['org/a___b', 'has an invalid path component "a___b"'],
    ['org/-app', 'has an invalid path component "-app"'],
    ['my_host.io/org/app:v1', 'has an invalid registry host "my_host.io"'],
    ['ghcr.io:port/org/app', 'has an invalid registry host'],
    ['https://ghcr.io/org/image:v1', 'is a URL'],
    [`ghcr.io/org/${'a'.repeat(250)}:v1`, 'at most 255 are allowed'],
  ])('%j is refused: %s', (input, fragment) => {
    const err = refusal(() => parseImageRef(input));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.field).toBe('image');
    expect(err.message).toContain(fragment);
    expect(err.hint).toContain('ghcr.io');
    expect(err.message.length).toBeLessThan(300);
  });

  test('a hostile repository name fails fast (no regex backtracking blow-up)', () => {
    const started = performance.now();
    for (const input of [`${'a'.repeat(250)}!`, `${'a-'.repeat(120)}_!`, `x.io/${'a_'.repeat(120)}.`])
      expect(refusal(() => parseImageRef(input)).field).toBe('image');
    expect(performance.now() - started).toBeLessThan(100);
  });

  test.each<[string, boolean]>([
    ['ubuntu', true],
    ['ubuntu:latest', true],
    ['ubuntu:v1', false],
    [`ubuntu@${DIGEST}`, false],
    [`ubuntu:latest@${DIGEST}`, false],
  ])('isFloatingTag(%s) is %s', (input, floating) => expect(isFloatingTag(parseImageRef(input))).toBe(floating));
});

describe('validateCreateImageSnapshot', () => {
  test('a good request comes back canonical, with the default entrypoint and its profile key', () => {
    expect(validateCreateImageSnapshot(good)).toEqual({
      workspace: 'acme',
      name: 'agent-base-v3',
      image: { registry: 'ghcr.io', repository: 'org/image', tag: 'v1' },
      imageRef: 'ghcr.io/org/image:v1',
      entrypoint: '/app/start.sh',
      runtime: 'codex',
      size: 'small',
      profileKey: 'codex/small/base-1',
    });
    const other = validateCreateImageSnapshot({
      ...good,
      workspace: 'system',
      image: '127.0.0.1:5000/team/app:1.2',
      entrypoint: '/usr/local/bin/agent_start-2.sh',
      runtime: 'pi',
      size: 'large',
    });
    expect(other).toMatchObject({
      workspace: 'system',
      imageRef: '127.0.0.1:5000/team/app:1.2',
      entrypoint: '/usr/local/bin/agent_start-2.sh',
      runtime: 'pi',
      size: 'large',
      profileKey: 'pi/large/base-1',
    });
  });

  test('the name rule is the catalog check constraint', () => {
    expect(SNAPSHOT_NAME_REGEX.source).toBe(SNAPSHOT_NAME_PATTERN);
  });

  test.each<[Partial<Record<keyof CreateImageSnapshotInput, unknown>>, string, string, string]>([
    [{ workspace: 'Acme' }, 'workspace', 'workspace "Acme" must be lowercase', 'system'],
    [{ workspace: '-acme' }, 'workspace', 'must start with a lowercase letter or digit', 'acme'],
    [{ workspace: 'acme_prod' }, 'workspace', 'contains "_", which is not allowed', 'acme'],
    [{ workspace: 'a'.repeat(64) }, 'workspace', 'is 64 characters long; at most 63', 'acme'],
    [{ workspace: '' }, 'workspace', 'workspace is empty', 'acme'],
    [{ workspace: undefined }, 'workspace', 'workspace is required', 'acme'],
    [{ name: 'Agent-Base' }, 'name', 'name "Agent-Base" must be lowercase', 'agent-base-v3'],
    [{ name: '.agent' }, 'name', 'must start with a lowercase letter or digit', 'agent-base-v3'],
    [{ name: 'agent base' }, 'name', 'contains " ", which is not allowed', 'agent-base-v3'],
    [{ name: 'agent/base' }, 'name', 'contains "/", which is not allowed', 'agent-base-v3'],
    [{ name: 'a'.repeat(64) }, 'name', 'is 64 characters long; at most 63', 'agent-base-v3'],
    [{ name: 42 }, 'name', 'name must be a string, not number', 'agent-base-v3'],
    [{ image: 'ghcr.io/org/image' }, 'image', 'image "ghcr.io/org/image" has no tag', '--allow-floating-tag'],
    [{ image: 'ghcr.io/org/image:latest' }, 'image', "uses the floating tag 'latest'", ':v1'],
    [{ image: 'ghcr.io/Org/image:v1' }, 'image', 'must be lowercase', 'ghcr.io/org/image:v1'],
    [{ entrypoint: 'app/start.sh' }, 'entrypoint', 'entrypoint "app/start.sh" must be an absolute path', '/app/start.sh'],
    [{ entrypoint: '/app/../etc/passwd' }, 'entrypoint', "has a '..' segment", '/app/start.sh'],
    [{ entrypoint: '/app/start sh' }, 'entrypoint', 'contains " "; only letters', '/app/start.sh'],
    [{ entrypoint: '/app/' }, 'entrypoint', 'names a directory', '/app/start.sh'],
    [{ entrypoint: `/${'a'.repeat(255)}` }, 'entrypoint', 'is 256 characters long; at most 255', '/app/start.sh'],
    [{ entrypoint: '' }, 'entrypoint', 'entrypoint is empty', '/app/start.sh'],
    [{ runtime: 'Codex' }, 'runtime', 'runtime "Codex" is not supported', 'codex, pi'],
    [{ runtime: 'python' }, 'runtime', 'runtime "python" is not supported', 'codex, pi'],
    [{ size: 'xl' }, 'size', 'size "xl" is not a size preset', 'small, medium, large'],
  ])('%j is refused on %s', (patch, field, message, hint) => {
    const err = refusal(() => validateCreateImageSnapshot({ ...good, ...patch } as CreateImageSnapshotInput));
    expect(err.code).toBe('VALIDATION_FAILED');
    expect(err.field).toBe(field);
    expect(err.message).toContain(message);
    expect(err.hint).toContain(hint);
  });

  const hostile: [string, string][] = [
    ['SQL', "x'; drop table snapshots;--"],
    ['shell substitution', '$(rm -rf /)'],
    ['backticks', '`id`'],
    ['semicolon', 'a;b'],
    ['pipe', 'a|b'],
    ['10 kB', 'a'.repeat(10 * 1024)],
    ['NUL byte', 'agent\0base'],
    ['newline', 'agent\nbase'],
    ['escape sequence', 'agent\u001b[31mbase'],
    ['bidi override', 'agent\u202ebase'],
  ];
  const fields = ['workspace', 'name', 'image', 'entrypoint', 'runtime', 'size'] as const;
  test.each(fields.flatMap((field) => hostile.map(([kind, value]) => [field, kind, value] as const)))(
    '%s: %s is refused, briefly',
    (field, _kind, value) => {
      // An entrypoint must look absolute to reach its own rules; other fields take the value as it is.
      const input = { ...good, [field]: field === 'entrypoint' ? `/app/${value}` : value };
      const err = refusal(() => validateCreateImageSnapshot(input));
      expect(err.code).toBe('VALIDATION_FAILED');
      expect(err.field).toBe(field);
      expect(err.hint).toBeTruthy();
      expect(err.message.length).toBeLessThan(300);
      // eslint-disable-next-line no-control-regex -- checking that no control character reaches the message raw
      expect(err.message).not.toMatch(/[\0\n\u001b\u202e]/);
      expect(err.message).not.toContain('a'.repeat(100)); // a long value is cut, not echoed back
    },
  );

  test('the 10 kB and NUL refusals say what is wrong before any field rule runs', () => {
    expect(refusal(() => validateCreateImageSnapshot({ ...good, name: 'a'.repeat(10 * 1024) })).message).toBe(
      'name is 10240 characters long; at most 1024 are accepted',
    );
    expect(refusal(() => validateCreateImageSnapshot({ ...good, runtime: 'codex\0' })).message).toBe(
      'runtime "codex\\u0000" contains a NUL byte',
    );
    expect(refusal(() => validateCreateImageSnapshot({ ...good, image: 'ubuntu:v1\n' })).message).toBe(
      'image "ubuntu:v1\\n" contains a control character (such as a newline or tab)',
    );
  });

  test('a floating tag is refused, then accepted with allowFloatingTag; a digest is never floating', () => {
    const floating = { ...good, image: 'ubuntu:latest' };
    expect(refusal(() => validateCreateImageSnapshot(floating)).field).toBe('image');
    expect(validateCreateImageSnapshot({ ...floating, allowFloatingTag: true }).imageRef).toBe('docker.io/library/ubuntu:latest');
    expect(validateCreateImageSnapshot({ ...good, image: 'ubuntu', allowFloatingTag: true }).imageRef).toBe('docker.io/library/ubuntu');
    expect(validateCreateImageSnapshot({ ...good, image: `ubuntu@${DIGEST}` }).imageRef).toBe(`docker.io/library/ubuntu@${DIGEST}`);
  });
});

describe('nextVersionedName', () => {
  const long = 'a'.repeat(58);
  test.each<[string, string[], string]>([
    ['agent-base-v3', [], 'agent-base-v4'],
    ['agent-base-v3', ['agent-base-v4', 'agent-base-v5'], 'agent-base-v6'],
    ['agent-base', [], 'agent-base-v2'],
    ['agent-base', ['agent-base-v2'], 'agent-base-v3'],
    ['agent-base-v9', [], 'agent-base-v10'],
    ['agent-base-v09', [], 'agent-base-v10'],
    ['v3', [], 'v3-v2'],
    [`${long}a-v99`, [], `${long}-v100`],
    [`${'b'.repeat(63)}`, [], `${'b'.repeat(60)}-v2`],
    [`${'c'.repeat(59)}.-v9`, [], `${'c'.repeat(59)}-v10`],
  ])('%s (taken %j) → %s', (name, taken, next) => {
    const result = nextVersionedName(name, taken);
    expect(result).toBe(next);
    expect(result).toMatch(SNAPSHOT_NAME_REGEX);
  });
});
