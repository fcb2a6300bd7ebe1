"""Benchmark flow: `start` stores a large numpy array, `train` is trivial and ignores it."""

import numpy as np
from metaflow import FlowSpec, Parameter, step


class BigParentFlow(FlowSpec):
    mb = Parameter("mb", default=200, type=int, help="Size of the parent array in MB.")

    @step
    def start(self):
        rng = np.random.default_rng(0)
        self.big = rng.random(self.mb * (1 << 20) // 8)
        self.next(self.train)

    @step
    def train(self):
        self.n = 1
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BigParentFlow()
