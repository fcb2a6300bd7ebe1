"""A small flow for `make demo`: a foreach, a join and a card."""

from metaflow import FlowSpec, Parameter, card, current, step


class HelloFlow(FlowSpec):
    """Trains a toy model per learning rate and keeps the best one."""

    scale = Parameter("scale", default=3, help="Multiplier applied to the data.")

    @step
    def start(self):
        self.data = [i * self.scale for i in range(10)]
        self.rates = [0.1, 0.2, 0.3]
        self.next(self.train, foreach="rates")

    @card
    @step
    def train(self):
        self.rate = self.input
        self.score = sum(x * self.rate for x in self.data)
        from metaflow.cards import Markdown

        current.card.append(Markdown(f"# Trained with rate {self.rate}\nscore = {self.score:.2f}"))
        self.next(self.join)

    @step
    def join(self, inputs):
        self.scores = [inp.score for inp in inputs]
        self.best = max(self.scores)
        self.next(self.end)

    @step
    def end(self):
        print("best score", self.best)


if __name__ == "__main__":
    HelloFlow()
