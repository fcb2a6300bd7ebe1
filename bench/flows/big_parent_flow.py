"""Benchmark flow: `start` stores a large numpy array, `train` is trivial and ignores it.

With `--read True`, `train` also reads one element of the array, so a spin must load it.
"""

import numpy as np
from metaflow import FlowSpec, Parameter, step


class BigParentFlow(FlowSpec):
    mb = Parameter("mb", default=200, type=int, help="Size of the parent array in MB.")
    read = Parameter("read", default=False, type=bool, help="Let `train` read the array.")

    @step
    def start(self):
        rng = np.random.default_rng(0)
        self.big = rng.random(self.mb * (1 << 20) // 8)
        self.next(self.train)

    @step
    def train(self):
        self.n = 1
        if self.read:
            self.first = float(self.big[0])
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigParentFlow()
