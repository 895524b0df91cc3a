/**
 * Softprompt.connect options: endpoint and key checks before anything connects, and key files read
 * from a folder as `softprompt-worker keys new` writes them (ZeroMQ certificates).
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { curveKeyPair } from 'zeromq';
import { ValidationError } from '../../../ts/src/core/errors.js';
import { loadKeys, parseConnectOptions } from '../../../ts/src/internal/connect-options.js';

const root = mkdtempSync(join(tmpdir(), 'softprompt-connect-options-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const certificate = (pub: string, secret?: string) =>
  `#   ZeroMQ CURVE certificate\nmetadata\ncurve\n    public-key = "${pub}"\n${secret ? `    secret-key = "${secret}"\n` : ''}`;

function keyFolder(name: string, mode = 0o600) {
  const dir = join(root, name);
  mkdirSync(dir);
  const server = curveKeyPair();
  const client = curveKeyPair();
  writeFileSync(join(dir, 'server.key'), certificate(server.publicKey));
  writeFileSync(join(dir, 'alice.key_secret'), certificate(client.publicKey, client.secretKey));
  chmodSync(join(dir, 'alice.key_secret'), mode);
  return { dir, server, client };
}

describe('connect options', () => {
  it('needs keys for TCP, a tcp://HOST:PORT or ipc:// endpoint, and Z85 keys', () => {
    expect(() => parseConnectOptions('tcp://h:5555', {})).toThrow(/options.keys: required for a tcp:\/\/ endpoint/);
    expect(parseConnectOptions('ipc:///tmp/w.sock', {})).toMatchObject({ maxInFlight: 128, heartbeatMs: 2000, reconnectWaitMs: 30_000 });
    for (const bad of ['tcp://h', 'http://h:1', 3]) expect(() => parseConnectOptions(bad, {})).toThrow(ValidationError);
    const { publicKey, secretKey } = curveKeyPair();
    expect(parseConnectOptions('tcp://h:1', { keys: { serverPublicKey: publicKey, clientPublicKey: publicKey, clientSecretKey: secretKey } }).keys).toBeDefined();
    expect(() => parseConnectOptions('tcp://h:1', { keys: { serverPublicKey: 'short', clientPublicKey: publicKey, clientSecretKey: secretKey } })).toThrow(
      'options.keys.serverPublicKey: expected a 40-character Z85 CURVE key',
    );
    expect(() => parseConnectOptions('tcp://h:1', { keys: { dir: '/k' }, maxInFlight: 0 })).toThrow('options.maxInFlight');
  });

  it('reads server.key and NAME.key_secret from a folder, ~ meaning the home folder', async () => {
    const { dir, server, client } = keyFolder('ok');
    const expected = { serverPublicKey: server.publicKey, clientPublicKey: client.publicKey, clientSecretKey: client.secretKey };
    await expect(loadKeys({ dir, name: 'alice' })).resolves.toEqual(expected);
    const home = process.env['HOME'];
    process.env['HOME'] = root;
    try {
      await expect(loadKeys({ dir: '~/ok', name: 'alice' })).resolves.toEqual(expected);
    } finally {
      process.env['HOME'] = home;
    }
  });

  it('refuses a secret other users can read, a missing file, a public file where a secret is needed', async () => {
    const { dir } = keyFolder('open', 0o644);
    await expect(loadKeys({ dir, name: 'alice' })).rejects.toThrow(/readable by other users \(mode 644\)/);
    await expect(loadKeys({ dir, name: 'bob' })).rejects.toThrow(/cannot read .*bob.key_secret/);
    writeFileSync(join(dir, 'carol.key_secret'), certificate(curveKeyPair().publicKey));
    chmodSync(join(dir, 'carol.key_secret'), 0o600);
    await expect(loadKeys({ dir, name: 'carol' })).rejects.toThrow(/carol.key_secret holds no secret-key/);
  });
});
