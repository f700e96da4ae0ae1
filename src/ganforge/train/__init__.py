"""The training loop and its recipes."""

from ganforge.train.run import Run, resume, train

__all__ = ["Run", "resume", "train"]
