from metaflow import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.base = 10
        self.shared = "same"
        self.next(self.a, self.b, self.c)

    @step
    def a(self):
        self.v = self.base + 1
        self.only_a = "A"
        self.next(self.join)

    @step
    def b(self):
        self.v = self.base + 2
        self.next(self.join)

    @step
    def c(self):
        self.v = self.base + 3
        self.next(self.join)

    @step
    def join(self, inputs):
        # Metaflow orders static-join inputs by set iteration (random per process);
        # devd uses the order the branches are declared in. Sort to compare with runs.
        self.vs = sorted(inp.v for inp in inputs)
        self.branch_order = [inp.v for inp in inputs]
        self.from_a = inputs.a.v
        self.merge_artifacts(inputs, exclude=["v"])
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.vs)


if __name__ == "__main__":
    BranchFlow()
