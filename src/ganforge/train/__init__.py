"""The training loop and its recipes."""

from ganforge.train.run import Run, resume, start_or_continue, train

__all__ = ["Run", "resume", "start_or_continue", "train"]
