import os

from metaflow import Config, FlowSpec, config_expr, environment, step


class ConfigFlow(FlowSpec):
    settings = Config("settings", default="settings.json")

    @step
    def start(self):
        self.seen_lr = self.settings.lr
        self.next(self.train)

    @environment(vars={"DEVD_TAG": config_expr("settings.tag")})
    @step
    def train(self):
        self.lr = self.settings.lr
        self.tag = self.settings.tag
        self.env_tag = os.environ.get("DEVD_TAG")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConfigFlow()
