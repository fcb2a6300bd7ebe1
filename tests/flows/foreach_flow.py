from metaflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [3, 1, 4, 1, 5, 9]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.item = self.input
        self.sq = self.input ** 2
        self.idx = self.index
        self.stack = [(index, splits) for index, splits, _ in self.foreach_stack()]
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [inp.sq for inp in inputs]
        self.order = [inp.idx for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.total = sum(self.squares)


if __name__ == "__main__":
    ForeachFlow()
