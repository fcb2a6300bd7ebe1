"""Match cutting on a made-up video: the media ML post's five steps as a Metaflow flow.

start      makes the video: frames (uint8, frames x 72 x 128 x 3; ~220 MB at the default)
shots      shot boundaries SB = {shot: [first, end)} from frame differences
dedup      a colour embedding per shot; near-identical shots removed -> SB_deduped
represent  a layout representation per remaining shot (grey, colour-blind)
score      every pair of shots scored (quadratic in the shots), the top-K pairs kept; its
           card shows the best pairs as thumbnails, so it reads the frames again
"""

# Imported here, not in the steps: a warm devd spin then finds them already loaded.
import numpy as np
from metaflow import FlowSpec, Parameter, card, current, step
from metaflow.cards import Image, Markdown, Table
from pngbytes import png
from video import pooled, shot_boundaries, synthesize, unit


class MatchCuttingFlow(FlowSpec):
    frames = Parameter("frames", default=8000, help="Frames of video to make (27.6 KB each).")
    seed = Parameter("seed", default=0, help="Seed of the made-up video.")
    top_k = Parameter("top_k", default=6, help="How many pairs to keep (K).")

    @step
    def start(self):
        self.video, self.truth = synthesize(self.frames, self.seed)
        print(f"{len(self.video)} frames, {self.video.nbytes / 1e6:.0f} MB")
        self.next(self.shots)

    @step
    def shots(self):
        self.SB = shot_boundaries(self.video)
        print(f"{len(self.SB)} shots")
        self.next(self.dedup)

    @step
    def dedup(self):
        shots = list(self.SB)
        self.embeddings = unit(np.stack([pooled(self.video, *self.SB[s], grey=False)
                                         for s in shots]))
        similarity = self.embeddings @ self.embeddings.T
        kept: list[int] = []
        self.duplicate_of = {}
        for i, shot in enumerate(shots):
            earlier = [k for k in kept if similarity[i, shots.index(k)] > 0.95]
            if earlier:
                self.duplicate_of[shot] = earlier[0]
            else:
                kept.append(shot)
        self.SB_deduped = {s: self.SB[s] for s in kept}
        print(f"{len(self.SB) - len(kept)} duplicate shots removed")
        self.next(self.represent)

    @step
    def represent(self):
        self.shot_ids = list(self.SB_deduped)
        self.representations = unit(np.stack(
            [pooled(self.video, *self.SB_deduped[s], grey=True) for s in self.shot_ids]))
        self.next(self.score)

    @card
    @step
    def score(self):
        self.scores = self.representations @ self.representations.T  # every pair at once
        first, second = np.triu_indices(len(self.shot_ids), 1)
        order = np.argsort(-self.scores[first, second], kind="stable")[: self.top_k]
        self.top_pairs = [{"shot1": self.shot_ids[first[i]], "shot2": self.shot_ids[second[i]],
                           "score": round(float(self.scores[first[i], second[i]]), 4)}
                          for i in order]
        self.pair_count = len(first)
        self.report_card()
        self.next(self.end)

    def report_card(self):
        """The best pairs as thumbnails: the middle frame of each shot, side by side."""
        current.card.append(Markdown(
            f"# Top {len(self.top_pairs)} match cuts\n{len(self.shot_ids)} shots after "
            f"deduplication ({len(self.SB)} before), {self.pair_count} pairs scored."))
        current.card.append(Table([[p["shot1"], p["shot2"], p["score"]] for p in self.top_pairs],
                                  headers=["shot1", "shot2", "score"]))
        for pair in self.top_pairs:
            middles = [self.video[sum(self.SB[pair[k]]) // 2] for k in ("shot1", "shot2")]
            gap = np.full((middles[0].shape[0], 6, 3), 255, np.uint8)
            current.card.append(Image(
                png(np.concatenate([middles[0], gap, middles[1]], axis=1)),
                label=f"shots {pair['shot1']} and {pair['shot2']}: {pair['score']:.3f}"))

    @step
    def end(self):
        for pair in self.top_pairs:
            print(pair)


if __name__ == "__main__":
    MatchCuttingFlow()
