/**
 * GPT-2's byte-level alphabet (tokenizers' ByteLevel pre-tokenizer and decoder): every byte is written as one
 * printable character, so a vocabulary piece maps back to the exact bytes it stands for, even half a UTF-8 character.
 * Mirrored by softgrpo.tokenizer.ChatTokenizer.token_bytes.
 */
function byteAlphabet(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = new Map<string, number>();
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    // printable bytes stand for themselves, the rest for 256, 257, ... in byte order
    const code = printable.includes(b) ? b : 256 + shifted++;
    chars.set(String.fromCodePoint(code), b);
  }
  return chars;
}

const ALPHABET = byteAlphabet();

/** The bytes of a byte-level piece ("Ġ4" -> [32, 52]), or null when a character is outside the alphabet. */
export function byteLevelBytes(piece: string): number[] | null {
  const bytes: number[] = [];
  for (const ch of piece) {
    const b = ALPHABET.get(ch);
    if (b === undefined) return null;
    bytes.push(b);
  }
  return bytes;
}
