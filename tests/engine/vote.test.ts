import { describe, expect, it } from "vitest";
import { extractAnswer, lastBoxed, leaderIsDecided, majorityVote, normalizeAnswer, sampleAnswer } from "../../src/engine/vote";

describe("answer extraction", () => {
  it("takes the last boxed answer with nested braces", () => {
    expect(lastBoxed("first \\boxed{1} then \\boxed{\\frac{3}{4}} done")).toBe("\\frac{3}{4}");
    expect(lastBoxed("no box here")).toBeNull();
    expect(lastBoxed("unclosed \\boxed{12")).toBeNull();
  });

  it("takes the last number, keeping signs, decimals and thousands separators", () => {
    expect(extractAnswer("3 apples and -1,250.5 pears", { extract: "last_number", normalize: "exact" })).toBe("-1,250.5");
    expect(extractAnswer("none", { extract: "last_number", normalize: "exact" })).toBeNull();
  });

  it("takes the first group of the last regex match", () => {
    const s = { extract: "regex" as const, normalize: "exact" as const, pattern: "answer: (\\w+)" };
    expect(extractAnswer("answer: a ... answer: b", s)).toBe("b");
  });
});

describe("normalisation", () => {
  it("treats equal numbers in different notations as one answer under math", () => {
    const forms = ["0.5", "\\frac{1}{2}", "\\dfrac12", "1/2", " $0.50$ ", "2/4"];
    expect(new Set(forms.map((f) => normalizeAnswer(f, "math")))).toEqual(new Set(["1/2"]));
    expect(normalizeAnswer("1,000", "math")).toBe("1000");
    expect(normalizeAnswer("-3.", "math")).toBe("-3");
    expect(normalizeAnswer("\\text{yes}", "math")).toBe("yes");
  });

  it("only trims under exact", () => {
    expect(normalizeAnswer(" 0.50 ", "exact")).toBe("0.50");
  });

  it("returns null for a sample without an extractable answer", () => {
    expect(sampleAnswer("I don't know", { extract: "boxed", normalize: "math" })).toBeNull();
  });
});

describe("majority vote", () => {
  it("picks the most common answer, breaks ties by first appearance and ignores missing answers", () => {
    const tally = majorityVote(["7", null, "8", "8", "7", "9"]);
    expect(tally.answer).toBe("7");
    expect(tally.votes).toBe(2);
    expect(tally.agreement).toBeCloseTo(2 / 6, 12);
    expect(tally.distribution).toEqual([
      { answer: "7", count: 2 },
      { answer: "8", count: 2 },
      { answer: "9", count: 1 },
    ]);
  });

  it("returns no answer when no sample had one", () => {
    expect(majorityVote([null, null])).toMatchObject({ answer: null, votes: 0, agreement: 0 });
  });

  it("decides only when the remaining samples cannot overtake or tie the leader", () => {
    expect(leaderIsDecided(["4", "4", "4"], 2)).toBe(true);
    expect(leaderIsDecided(["4", "4", "4"], 3)).toBe(false);
    expect(leaderIsDecided(["4", "4", "5"], 0)).toBe(true);
    expect(leaderIsDecided(["4", "5"], 0)).toBe(false);
    expect(leaderIsDecided([null, null], 0)).toBe(false);
  });
});
