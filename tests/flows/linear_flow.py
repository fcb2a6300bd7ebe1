from metaflow import FlowSpec, Parameter, step


class LinearFlow(FlowSpec):
    alpha = Parameter("alpha", default=2, type=int)

    @step
    def start(self):
        self.x = [1, 2, 3]
        self.label = "lin"
        self.next(self.double)

    @step
    def double(self):
        self.y = sum(self.x) * self.alpha
        print("y is", self.y)
        self.next(self.end)

    @step
    def end(self):
        self.z = self.y + 1


if __name__ == "__main__":
    LinearFlow()
