import { isIP } from 'node:net';

// What a clientAddresses entry may be: an IPv4 or IPv6 address, a CIDR block, or "local" (a
// Unix-socket session). policy/address.ts compiles the entries into a matcher.

/** Why an entry is not an address, or undefined when it is one. */
export function addressError(entry: string): string | undefined {
  if (entry === 'local') return undefined;
  const [ip, prefix, extra] = entry.split('/');
  if (extra !== undefined || !ip || isIP(ip) === 0) {
    return `expected an IP address, a CIDR like "10.0.0.0/8" or "fd00::/8", or "local", got "${entry}"`;
  }
  if (prefix !== undefined) {
    const max = isIP(ip) === 4 ? 32 : 128;
    if (!/^\d+$/.test(prefix) || Number(prefix) > max) {
      return `expected a prefix length 0-${max} after "/", got "${entry}"`;
    }
  }
  return undefined;
}
