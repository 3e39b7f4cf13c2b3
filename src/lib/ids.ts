/** Default `Ids` port: time-sortable ids (48-bit ms time + 80 random bits, base32) and random secrets. */
import type { Clock, Ids } from '../ports';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

function base32(bytes: Uint8Array, chars: number): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += ALPHABET[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= 0xff;
  }
  return out;
}

function timePart(ms: number): string {
  let out = '';
  let t = Math.max(0, Math.floor(ms));
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

export function createIds(clock: Clock): Ids {
  return {
    next(prefix) {
      const rand = crypto.getRandomValues(new Uint8Array(10));
      return `${prefix}-${timePart(clock.now())}${base32(rand, 16)}`;
    },
    secret(bytes = 24) {
      const raw = crypto.getRandomValues(new Uint8Array(bytes));
      let s = '';
      for (const b of raw) s += String.fromCharCode(b);
      return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    },
  };
}

export const systemClock: Clock = { now: () => Date.now() };
