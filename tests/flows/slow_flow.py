import time

from metaflow import FlowSpec, step


class SlowFlow(FlowSpec):
    @step
    def start(self):
        self.seconds = 0
        self.next(self.nap)

    @step
    def nap(self):
        print("napping", self.seconds, flush=True)
        time.sleep(self.seconds)
        self.slept = self.seconds
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowFlow()
