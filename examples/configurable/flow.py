"""A flow configured by a TOML file: its schedule, resources, a Parameter default and the
training itself (the Configs post's ConfigurableFlow, grown a little).

    devd run flow.py                                       # config.toml
    python merge.py EXP_01 && devd run flow.py --config config build/EXP_01.toml
    devd spin flow.py train --config config build/EXP_02.toml
"""

import pprint

import numpy as np
from metaflow import (
    Config,
    FlowSpec,
    Parameter,
    card,
    config_expr,
    current,
    resources,
    schedule,
    step,
)
from metaflow.cards import Markdown, Table


@schedule(cron=config_expr("config.schedule.cron"))
class ConfigurableFlow(FlowSpec):
    config = Config("config", default="config.toml", parser="tomllib.loads")
    # A Parameter is fixed when a run starts: a spin keeps the run's value of it.
    epochs = Parameter("epochs", default=config.model.epochs)

    @step
    def start(self):
        print("Config loaded:")
        pprint.pp(self.config)
        rng = np.random.default_rng(0)
        self.features = names = list(self.config.data.features)
        self.X = rng.normal(size=(self.config.data.samples, len(names)))
        self.true_weights = np.arange(1.0, len(names) + 1.0)
        self.y = self.X @ self.true_weights + rng.normal(scale=0.1, size=len(self.X))
        self.next(self.train)

    @card
    @resources(cpu=config.resources.cpu)
    @step
    def train(self):
        model = self.config.model
        weights = np.zeros(self.X.shape[1])
        moment, velocity = np.zeros_like(weights), np.zeros_like(weights)
        self.losses = []
        for epoch in range(1, self.epochs + 1):
            error = self.X @ weights - self.y
            self.losses.append(float((error ** 2).mean()))
            grad = 2 * self.X.T @ error / len(self.y)
            if model.optimizer == "adam":
                moment = 0.9 * moment + 0.1 * grad
                velocity = 0.999 * velocity + 0.001 * grad ** 2
                step_ = (moment / (1 - 0.9 ** epoch)) / (
                    np.sqrt(velocity / (1 - 0.999 ** epoch)) + 1e-8)
            else:
                step_ = grad
            weights -= model.learning_rate * step_
        self.weights = weights
        self.final_loss = self.losses[-1]
        self.cpu = self.config.resources.cpu  # what @resources asked for
        current.card.append(Markdown(
            f"# {model.optimizer}, learning rate {model.learning_rate}\n"
            f"Final loss **{self.final_loss:.4f}** after {self.epochs} epochs "
            f"(schedule `{self.config.schedule.cron}`, {self.cpu} CPU)."))
        current.card.append(Table(
            [[name, f"{w:.3f}", f"{t:.1f}"] for name, w, t in
             zip(self.features, self.weights, self.true_weights, strict=True)],
            headers=["feature", "learned weight", "true weight"]))
        self.next(self.end)

    @step
    def end(self):
        print(f"{self.config.model.optimizer}: loss {self.final_loss:.4f}")


if __name__ == "__main__":
    ConfigurableFlow()
