import ctypes
import json
import os

from metaflow import FlowSpec, card, current, environment, retry, step, timeout


class ChaosFlow(FlowSpec):
    @step
    def start(self):
        self.data = [1, 2, 3]
        self.table = {"a": 1}
        self.mode = "none"
        self.next(self.mutate)

    @step
    def mutate(self):
        self.data.append(len(self.data) + 1)
        self.table["n"] = self.table.get("n", 0) + 1
        if self.mode == "exit":
            os._exit(3)
        if self.mode == "segv":
            ctypes.string_at(0)
        if self.mode == "patch":
            json.dumps = None
        if self.mode == "raise":
            raise RuntimeError("boom")
        self.total = sum(self.data)
        self.json_ok = json.dumps({"x": 1})
        self.next(self.decorated)

    @card
    @retry(times=2)
    @timeout(seconds=2)
    @environment(vars={"DEVD_ENV": "yes"})
    @step
    def decorated(self):
        from metaflow.cards import Markdown

        self.env = os.environ.get("DEVD_ENV")
        self.where = [current.flow_name, current.step_name]
        self.ids_set = bool(current.run_id) and bool(current.task_id)
        current.card.append(Markdown("# hello card"))
        if self.mode == "slow":
            import time

            time.sleep(10)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ChaosFlow()
