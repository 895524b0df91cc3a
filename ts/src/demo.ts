/**
 * `make demo`: start the worker, show what it can do, round-trip a tensor, close.
 * (A placeholder until the first real tuning run takes its place.)
 */
import { Softprompt, bf16ToFloat32, float32ToBf16, tensor } from './index.js';

async function main(): Promise<void> {
  const started = performance.now();
  await using sp = await Softprompt.start();
  const caps = sp.capabilities;
  console.log(`worker ${sp.workerVersion} (pid ${sp.workerPid}) ready in ${Math.round(performance.now() - started)} ms`);
  console.log(`  python ${caps.python}, torch ${caps.torch}, transformers ${caps.transformers}, peft ${caps.peft}`);
  console.log(`  devices: ${caps.devices.join(', ')}${caps.gpus.map((g) => ` [${g.name}, ${(g.memoryBytes / 2 ** 30).toFixed(0)} GiB]`).join('')}`);
  console.log(`  methods: ${caps.methods.join(', ') || '(none yet)'}`);

  const x = tensor('bf16', [2, 3], float32ToBf16([0.5, -1.25, 3, 1e-3, 65504, Math.PI]));
  const { x: back } = await sp.echo({ x });
  const same = back !== undefined && Buffer.compare(Buffer.from(back.data.buffer, back.data.byteOffset, back.data.byteLength), Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength)) === 0;
  console.log(`  echo bf16[2, 3] → ${same ? 'bit-exact' : 'MISMATCH'}: [${Array.from(bf16ToFloat32(x.data)).map((v) => v.toPrecision(4)).join(', ')}]`);
  console.log(`  ping: ${(await sp.ping()).toFixed(2)} ms`);
  if (!same) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
