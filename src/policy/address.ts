import { isIP } from 'node:net';

// Client address lists: IPv4 and IPv6 addresses and CIDR blocks, and the word "local" for
// sessions over a Unix socket (pg_stat_activity shows client_addr NULL for those). The entries
// were checked by config/address.ts.
interface Block {
  bytes: Uint8Array;
  prefix: number;
}

export class AddressSet {
  private readonly local: boolean;
  private readonly blocks: Block[];

  constructor(entries: readonly string[]) {
    this.local = entries.includes('local');
    this.blocks = entries.filter((e) => e !== 'local').map(toBlock);
  }

  /** clientAddr null with local true: a Unix-socket session. */
  test(clientAddr: string | null, local: boolean): boolean {
    if (local) return this.local;
    if (clientAddr === null) return false;
    const bytes = cachedBytes(clientAddr);
    if (bytes === undefined) return false;
    for (const b of this.blocks) if (contains(b, bytes)) return true;
    return false;
  }
}

function toBlock(entry: string): Block {
  const [ip, prefix] = entry.split('/');
  const bytes = toBytes(ip!);
  if (!bytes) throw new Error(`not an address: ${entry}`);
  if (prefix === undefined) return { bytes, prefix: bytes.length * 8 };
  // an IPv4-mapped IPv6 block (::ffff:10.0.0.0/104) is stored as IPv4
  const mappedShift = isIP(ip!) === 6 && bytes.length === 4 ? 96 : 0;
  return { bytes, prefix: Math.max(0, Number(prefix) - mappedShift) };
}

function contains(block: Block, bytes: Uint8Array): boolean {
  if (block.bytes.length !== bytes.length) return false;
  let bits = block.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((block.bytes[i]! & mask) !== (bytes[i]! & mask)) return false;
  }
  return true;
}

// Sessions repeat a few thousand client addresses run after run, and every policy asks for them:
// parse each once. Bounded, since addresses come from the network.
const parsed = new Map<string, Uint8Array | undefined>();
function cachedBytes(address: string): Uint8Array | undefined {
  let bytes = parsed.get(address);
  if (bytes === undefined && !parsed.has(address)) {
    if (parsed.size >= 65_536) parsed.clear();
    bytes = toBytes(address);
    parsed.set(address, bytes);
  }
  return bytes;
}

/** Address bytes; IPv4-mapped IPv6 (::ffff:10.0.0.1) counts as IPv4. */
export function toBytes(address: string): Uint8Array | undefined {
  const ip = address.split('%')[0]!;
  const kind = isIP(ip);
  if (kind === 4) return Uint8Array.from(ip.split('.').map(Number));
  if (kind !== 6) return undefined;
  const v6 = parseV6(ip);
  const mapped = v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

function parseV6(ip: string): Uint8Array {
  let text = ip;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail.push(...dotted[1]!.split('.').map(Number));
    text = text.slice(0, -dotted[1]!.length) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}
