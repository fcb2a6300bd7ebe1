from metaflow import FlowSpec, Parameter, step


class FailFlow(FlowSpec):
    k = Parameter("k", default=5, type=int)

    @step
    def start(self):
        self.threshold = 10
        self.kk = self.k
        self.next(self.train)

    @step
    def train(self):
        if self.kk < self.threshold:
            raise ValueError(f"kk={self.kk} is below {self.threshold}")
        self.model = self.kk * 2
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailFlow()
