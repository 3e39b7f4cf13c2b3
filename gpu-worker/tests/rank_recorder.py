"""A rank of softgrpo.rank_entry that also records the rollouts it generates (tests/test_distributed.py).

    torchrun --standalone --nproc_per_node=2 tests/rank_recorder.py <run.json> <record dir>

Wraps softgrpo.train.rollouts_in_chunks, so the record is what the real training loop generated on this rank:
for every training step, {global row: emitted tokens} in <record dir>/rank-<r>.json.
"""
import json
import os
import sys
from pathlib import Path

from softgrpo import rank_entry, train


def main() -> int:
    run_file, record_dir = sys.argv[1], Path(sys.argv[2])
    record, real = [], train.rollouts_in_chunks

    def recording(engine, prompts, cfg, seed, chunk_size, samples=None):
        rollouts = real(engine, prompts, cfg, seed, chunk_size, samples=samples)
        rows = list(range(len(prompts))) if samples is None else list(samples)
        record.append({str(row): r.tokens.tolist() for row, r in zip(rows, rollouts)})
        (record_dir / f"rank-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(record))
        return rollouts

    train.rollouts_in_chunks = recording
    return rank_entry.main([run_file])


if __name__ == "__main__":
    sys.exit(main())
