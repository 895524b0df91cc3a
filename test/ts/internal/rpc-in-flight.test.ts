/**
 * Rpc's in-flight limit over a fake link: at most `maxInFlight` requests reach the transport; the rest
 * wait in call order and start as others settle; a call abandoned while waiting (deadline, abort) is
 * never sent and does not take a slot.
 */
import { describe, expect, it } from 'vitest';
import { AbortError, TimeoutError } from '../../../ts/src/core/errors.js';
import type { HelloInfo } from '../../../ts/src/internal/handshake.js';
import type { LinkConnection, WorkerLink } from '../../../ts/src/internal/link.js';
import { Rpc } from '../../../ts/src/internal/rpc.js';
import type { PendingHandlers, Transport } from '../../../ts/src/internal/transport.js';
import type { Message } from '../../../ts/src/internal/wire.js';

class FakeTransport {
  readonly sent: { id: number; op: string; handlers: PendingHandlers }[] = [];
  #nextId = 1;

  send(op: string, _body: unknown, _tensors: unknown, handlers: PendingHandlers): number {
    const id = this.#nextId++;
    this.sent.push({ id, op, handlers });
    return id;
  }

  cancel(): void {}

  /** Replies to the request sent `k`-th (0-based). */
  reply(k: number): void {
    const { id, op, handlers } = this.sent[k]!;
    handlers.onReply({ v: 1, id, kind: 'reply', op, body: { k }, tensors: [] } as unknown as Message);
  }
}

function fakeLink(transport: FakeTransport): WorkerLink {
  const conn: LinkConnection = { transport: transport as unknown as Transport, hello: {} as HelloInfo };
  return {
    current: conn,
    connection: () => Promise.resolve(conn),
    hello: conn.hello,
    log: () => {},
    onRestart: () => {},
    close: () => Promise.resolve(),
  };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('Rpc maxInFlight', () => {
  it('sends at most maxInFlight requests; the others start in call order as replies come', async () => {
    const transport = new FakeTransport();
    const rpc = new Rpc(fakeLink(transport), undefined, 2);
    const calls = [0, 1, 2, 3, 4].map((n) => rpc.request(`op${n}`, {}));
    expect(transport.sent.map((s) => s.op)).toEqual(['op0', 'op1']);
    transport.reply(1);
    expect(transport.sent.map((s) => s.op)).toEqual(['op0', 'op1', 'op2']);
    transport.reply(0);
    transport.reply(2);
    expect(transport.sent.map((s) => s.op)).toEqual(['op0', 'op1', 'op2', 'op3', 'op4']);
    transport.reply(3);
    transport.reply(4);
    const bodies = (await Promise.all(calls)).map((r) => r.body['k']);
    expect(bodies).toEqual([0, 1, 2, 3, 4]); // each call got its own reply
  });

  it('a call abandoned while it waits is never sent and frees no extra slot', async () => {
    const transport = new FakeTransport();
    const rpc = new Rpc(fakeLink(transport), undefined, 1);
    const first = rpc.request('first', {});
    const aborter = new AbortController();
    const aborted = rpc.request('aborted', {}, undefined, { signal: aborter.signal });
    const late = rpc.request('late', {}, undefined, { timeoutMs: 5 });
    const third = rpc.request('third', {});
    aborter.abort();
    await expect(aborted).rejects.toBeInstanceOf(AbortError);
    await expect(late).rejects.toBeInstanceOf(TimeoutError);
    expect(transport.sent.map((s) => s.op)).toEqual(['first']); // still one in flight
    transport.reply(0);
    await first;
    expect(transport.sent.map((s) => s.op)).toEqual(['first', 'third']);
    transport.reply(1);
    await third;
    const again = [rpc.request('a', {}), rpc.request('b', {})];
    await tick();
    expect(transport.sent.map((s) => s.op)).toEqual(['first', 'third', 'a']); // the limit is still 1
    transport.reply(2);
    transport.reply(3);
    await Promise.all(again);
  });

  it('a send that throws frees its slot', async () => {
    const transport = new FakeTransport();
    let fail = true;
    const send = transport.send.bind(transport);
    transport.send = (...args: Parameters<FakeTransport['send']>) => {
      if (fail) throw new Error('cannot encode');
      return send(...args);
    };
    const rpc = new Rpc(fakeLink(transport), undefined, 1);
    await expect(rpc.request('bad', {})).rejects.toThrow('cannot encode');
    fail = false;
    const ok = rpc.request('ok', {});
    expect(transport.sent.map((s) => s.op)).toEqual(['ok']);
    transport.reply(0);
    await ok;
  });
});
