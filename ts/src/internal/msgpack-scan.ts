/**
 * A minimal MessagePack scanner: finds how a top-level map value is encoded without decoding it.
 * The decoder turns `1.0` into the number 1; WIRE.md requires integer ids, so the codec asks here
 * whether `id` was written as an integer.
 */

/** The head byte of `key`'s value in the top-level map of `buf`, or undefined if absent/unreadable. `key` is ASCII. */
export function headByteOf(buf: Uint8Array, key: string): number | undefined {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const first = buf[0];
  if (first === undefined) return undefined;
  let entries: number;
  let pos: number;
  if (first >= 0x80 && first <= 0x8f) [entries, pos] = [first & 0x0f, 1];
  else if (first === 0xde) [entries, pos] = [view.getUint16(1), 3];
  else if (first === 0xdf) [entries, pos] = [view.getUint32(1), 5];
  else return undefined;
  try {
    for (let i = 0; i < entries; i++) {
      const keyStart = pos;
      pos = skip(buf, view, pos);
      let isKey = buf[keyStart] === (0xa0 | key.length);
      for (let j = 0; isKey && j < key.length; j++) isKey = buf[keyStart + 1 + j] === key.charCodeAt(j);
      if (isKey) return buf[pos];
      pos = skip(buf, view, pos);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** True for the head bytes of MessagePack integers (fixints, uint8..64, int8..64). */
export function isIntegerHead(b: number | undefined): boolean {
  return b !== undefined && (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3));
}

/** Position just after the value starting at `pos`. Throws RangeError past the end. */
function skip(buf: Uint8Array, view: DataView, pos: number): number {
  const b = buf[pos];
  if (b === undefined) throw new RangeError('truncated');
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return pos + 1;
  if (b <= 0x8f) return skipMany(buf, view, pos + 1, (b & 0x0f) * 2);
  if (b <= 0x9f) return skipMany(buf, view, pos + 1, b & 0x0f);
  if (b <= 0xbf) return pos + 1 + (b & 0x1f);
  switch (b) {
    case 0xc4: case 0xd9: return pos + 2 + view.getUint8(pos + 1);
    case 0xc5: case 0xda: return pos + 3 + view.getUint16(pos + 1);
    case 0xc6: case 0xdb: return pos + 5 + view.getUint32(pos + 1);
    case 0xc7: return pos + 3 + view.getUint8(pos + 1);
    case 0xc8: return pos + 4 + view.getUint16(pos + 1);
    case 0xc9: return pos + 6 + view.getUint32(pos + 1);
    case 0xca: return pos + 5;
    case 0xcb: return pos + 9;
    case 0xcc: case 0xd0: return pos + 2;
    case 0xcd: case 0xd1: return pos + 3;
    case 0xce: case 0xd2: return pos + 5;
    case 0xcf: case 0xd3: return pos + 9;
    case 0xd4: return pos + 3;
    case 0xd5: return pos + 4;
    case 0xd6: return pos + 6;
    case 0xd7: return pos + 10;
    case 0xd8: return pos + 18;
    case 0xdc: return skipMany(buf, view, pos + 3, view.getUint16(pos + 1));
    case 0xdd: return skipMany(buf, view, pos + 5, view.getUint32(pos + 1));
    case 0xde: return skipMany(buf, view, pos + 3, view.getUint16(pos + 1) * 2);
    case 0xdf: return skipMany(buf, view, pos + 5, view.getUint32(pos + 1) * 2);
    default: throw new RangeError(`bad head byte ${b}`);
  }
}

function skipMany(buf: Uint8Array, view: DataView, pos: number, count: number): number {
  for (let i = 0; i < count; i++) pos = skip(buf, view, pos);
  return pos;
}
