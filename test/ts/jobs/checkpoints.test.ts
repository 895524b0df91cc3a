import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProtocolError, ValidationError } from '../../../ts/src/core/errors.js';
import { Checkpoints } from '../../../ts/src/jobs/checkpoints.js';
import type { WireMap } from '../../../ts/src/internal/wire.js';
import { FakeRpc } from './fake-rpc.js';

const described = {
  path: '/r/c.pb', method: 'prompt_tuning', method_config: { num_virtual_tokens: 4, init_text: null },
  base_model: { name_or_path: 'tiny:gpt2', model_type: 'gpt2', fingerprint: 'ab', hidden_size: 64, num_layers: 2 },
  step: 4, metrics: { token_accuracy: 0.5 }, versions: { softprompt: '0.1.0', torch: '2.5', transformers: '4', peft: '' },
  created_unix_ms: 1_700_000_000_000, content_sha256: 'ff', resumable: true,
  tensors: { 'prefix.key_values': { dtype: 'float32', shape: [4, 64] } }, compatible: true,
} as WireMap;

describe('sp.checkpoints', () => {
  it('inspect sends snake_case, resolves paths, and decodes camelCase (data maps untouched)', async () => {
    const fake = new FakeRpc(() => described);
    const info = await new Checkpoints(fake.rpc).inspect('c.pb', { model: { tiny: 'gpt2', device: 'cpu' } });
    expect(fake.sent).toEqual([{ op: 'checkpoint_inspect', body: { path: resolve('c.pb'), model: { tiny: 'gpt2', device: 'cpu' } } }]);
    expect(info).toMatchObject({
      methodConfig: { numVirtualTokens: 4, initText: null },
      baseModel: { nameOrPath: 'tiny:gpt2', modelType: 'gpt2', hiddenSize: 64, numLayers: 2 },
      metrics: { token_accuracy: 0.5 },
      createdUnixMs: 1_700_000_000_000,
      contentSha256: 'ff',
      tensors: { 'prefix.key_values': { dtype: 'float32', shape: [4, 64] } },
      compatible: true,
    });
  });

  it('exportPeft and importPeft build the ops’ bodies', async () => {
    const fake = new FakeRpc((op): WireMap =>
      op === 'checkpoint_export_peft'
        ? { out_dir: '/o', method: 'prompt_tuning', files: ['adapter_config.json', 'adapter_model.safetensors'] }
        : { path: '/n.pb', method: 'prompt_tuning', method_config: { num_virtual_tokens: 8 } },
    );
    const cp = new Checkpoints(fake.rpc);
    await expect(cp.exportPeft('/c.pb', '/o')).resolves.toEqual({ outDir: '/o', method: 'prompt_tuning', files: ['adapter_config.json', 'adapter_model.safetensors'] });
    await expect(cp.importPeft({ adapterDir: '/a', model: { nameOrPath: 'gpt2' }, out: '/n.pb' })).resolves.toEqual({
      path: '/n.pb', method: 'prompt_tuning', methodConfig: { numVirtualTokens: 8 },
    });
    expect(fake.sent.map((s) => s.body)).toEqual([
      { checkpoint: '/c.pb', out_dir: '/o' },
      { adapter_dir: '/a', model: { name_or_path: 'gpt2' }, out: '/n.pb' },
    ]);
  });

  it('rejects bad arguments before sending anything, and refuses odd replies', async () => {
    const fake = new FakeRpc(() => ({ path: 3 }) as WireMap);
    const cp = new Checkpoints(fake.rpc);
    await expect(cp.inspect('')).rejects.toThrow(new ValidationError('path: must not be empty'));
    await expect(cp.importPeft({ adapterDir: '/a', out: '/n.pb' } as never)).rejects.toThrow(/^input\.model: expected object/);
    await expect(cp.exportPeft('/c.pb', '/o', { model: { tiny: 'gpt5' as 'gpt2' } })).rejects.toThrow(/^options\.model\.tiny: /);
    expect(fake.sent).toEqual([]);
    await expect(cp.inspect('/c.pb')).rejects.toBeInstanceOf(ProtocolError);
  });
});
