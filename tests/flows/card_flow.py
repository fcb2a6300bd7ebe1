"""Cards of every kind devd renders: default and blank with components, an error, live."""

import base64
import time

from metaflow import FlowSpec, card, current, step
from metaflow.cards import Artifact, Image, Markdown, ProgressBar, Table, ValueBox

# A 2x2 red PNG, made here so the card's Image needs no file and no network.
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEElEQVR4nGO4IycHRAwQCgAhpgRhTxp8CQAAAABJRU5ErkJggg=="
)


class CardFlow(FlowSpec):
    @step
    def start(self):
        self.base = 4
        self.pause = 0.0  # seconds between live updates; a spin overrides it
        self.next(self.report)

    @card(type="blank", id="report")
    @card
    @step
    def report(self):
        self.total = self.base * 2
        self.label = "quarterly"
        if self.base > 10:
            self.bonus = self.base - 10
        print("report total", self.total)
        report = current.card["report"]
        report.append(Markdown(f"# Quarterly report\nTotal is **{self.total}**."))
        report.append(Table([["north", self.base], ["south", self.total]],
                            headers=["region", "units"]))
        report.append(Image(TINY_PNG, label="red square"))
        report.append(ProgressBar(max=10, value=7, label="epochs"))
        report.append(ValueBox(title="Accuracy", value="93%"))
        report.append(Artifact(self.label, name="label"))
        current.card.append(Markdown("## Notes from the default card"))
        self.next(self.broken)

    @card(type="test_error_card")
    @step
    def broken(self):
        self.after = self.total + 1
        self.next(self.live)

    @card(type="blank", id="live", refresh_interval=0.05)
    @step
    def live(self):
        status = Markdown("Waiting to start")
        bar = ProgressBar(max=5, value=0, label="ticks")
        current.card["live"].append(status)
        current.card["live"].append(bar)
        current.card["live"].refresh()
        for tick in range(1, 6):
            time.sleep(self.pause)
            bar.update(tick)
            status.update(f"Tick {tick} of 5")
            current.card["live"].refresh()
        self.ticks = 5
        self.next(self.end)

    @card(type="devd_shout")  # registered only by the extension tests/test_cards.py writes
    @step
    def end(self):
        pass


if __name__ == "__main__":
    CardFlow()
