from metaflow import FlowSpec, step


class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.outer = ["a", "b"]
        self.next(self.mid, foreach="outer")

    @step
    def mid(self):
        self.o = self.input
        self.inner = [1, 2, 3]
        self.next(self.leaf, foreach="inner")

    @step
    def leaf(self):
        self.val = f"{self.o}{self.input}"
        self.path = [(index, value) for index, _, value in self.foreach_stack()]
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.vals = [inp.val for inp in inputs]
        self.o = inputs[0].o
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all = [inp.vals for inp in inputs]
        self.next(self.end)

    @step
    def end(self):
        self.flat = [v for vals in self.all for v in vals]


if __name__ == "__main__":
    NestedFlow()
