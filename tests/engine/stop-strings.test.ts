import { describe, expect, it } from 'vitest';
import { byteLevelBytes } from '../../src/engine/byte-level';
import { StopStrings } from '../../src/engine/stop-strings';

describe('StopStrings', () => {
  const stops = new StopStrings(['\n\nQ', 'END', '}']);

  it('finds the earliest occurrence of any stop string', () => {
    expect(stops.cutIndex('The answer is 4}END')).toBe(15);
    expect(stops.cutIndex('A END\n\nQ')).toBe(2);
    expect(stops.cutIndex('nothing here')).toBe(-1);
  });

  it('holds back the longest tail that could still become a stop string', () => {
    expect(stops.releasable('Answer: 4\n\n')).toBe('Answer: 4'.length);
    expect(stops.releasable('Answer: 4\n')).toBe('Answer: 4'.length);
    expect(stops.releasable('Answer: EN')).toBe('Answer: '.length);
    expect(stops.releasable('Answer: 4')).toBe('Answer: 4'.length);
    expect(new StopStrings([]).releasable('abc')).toBe(3);
  });
});

describe('byteLevelBytes', () => {
  it('maps byte-level pieces back to their bytes, half characters included', () => {
    expect(byteLevelBytes('Ġ4')).toEqual([32, 52]);
    expect(byteLevelBytes('Ċ')).toEqual([10]);
    expect(byteLevelBytes('Ã¤')).toEqual([0xc3, 0xa4]); // "ä"
    expect(byteLevelBytes('ä¸')).toEqual([0xe4, 0xb8]); // the first two bytes of a CJK character
    expect(byteLevelBytes('€')).toBeNull(); // not in the alphabet
  });
});
