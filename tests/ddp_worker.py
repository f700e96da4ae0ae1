"""A torchrun entry point for the distributed tests: train through the public
``start_or_continue`` and write what this rank holds (G, D, EMA, its step count) to
``OUT/rank-R.safetensors``, so the test can compare the ranks bit for bit.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py \
        RUN_DIR OUT_DIR CONFIG_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from safetensors.torch import save_file

from ganforge.train import distributed
from ganforge.train.run import start_or_continue
from ganforge.train.trainer import Trainer


def main() -> None:
    run_dir, out, config = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    trainers: list[Trainer] = []
    original = Trainer.run

    def capture(self: Trainer, resumed: bool = False) -> None:
        trainers.append(self)
        original(self, resumed)

    Trainer.run = capture  # type: ignore[method-assign]
    dist = distributed.init_from_env("cpu")
    try:
        start_or_continue(run_dir, config)
        recipe = trainers[-1].recipe
        tensors = {f"G.{k}": v for k, v in recipe.G.state_dict().items()}
        tensors |= {f"D.{k}": v for k, v in recipe.D.state_dict().items()}
        tensors |= {f"G_ema.{k}": v for k, v in recipe.ema.model.state_dict().items()}
        save_file({k: v.contiguous() for k, v in tensors.items()},
                  str(out / f"rank-{dist.rank}.safetensors"),
                  metadata={"world": str(dist.world), "step": str(trainers[-1].step)})
    finally:
        distributed.shutdown()


if __name__ == "__main__":
    main()
