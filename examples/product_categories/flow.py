"""One classifier per computer-related product category, compared in a join.

start    generates a product catalogue and keeps it as Parquet bytes (the dataset artifact)
train    (foreach category) learns the sub-category from the product title; card: metrics
         table, confusion matrix image, a Vega-Lite chart
join     compares the categories' models
"""

import io

# Imported here, not in the steps: a warm devd spin then finds them already loaded.
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from metaflow import FlowSpec, Parameter, card, current, step
from metaflow.cards import Image, Markdown, Table, VegaChart
from pngbytes import heatmap
from products import COMPUTER, make_products
from sklearn.cluster import KMeans
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import train_test_split


class ProductCategoriesFlow(FlowSpec):
    rows = Parameter("rows", default=3000, help="How many products to generate.")

    @step
    def start(self):
        table = make_products(self.rows)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        self.dataset = buffer.getvalue()  # the Parquet file, versioned with the run
        present = set(table.column("category").to_pylist())
        self.categories = [c for c in COMPUTER if c in present]
        self.model = "logreg"  # or "kmeans": k clusters, each labelled by its majority
        self.k = 8
        print(f"{table.num_rows} products, training on {self.categories}")
        self.next(self.train, foreach="categories")

    @card
    @step
    def train(self):
        self.category = self.input
        table = pq.read_table(io.BytesIO(self.dataset))
        table = table.filter(pc.equal(table.column("category"), self.category))
        titles = table.column("title").to_pylist()
        labels = np.array([str(s) for s in table.column("subcategory").to_pylist()])
        x_train, x_test, y_train, y_test = train_test_split(
            titles, labels, test_size=0.25, random_state=0, stratify=labels)
        vectorizer = TfidfVectorizer(token_pattern=r"[^\s]+")
        train_features = vectorizer.fit_transform(x_train)
        test_features = vectorizer.transform(x_test)
        if self.model == "kmeans":
            clusters = KMeans(n_clusters=self.k, n_init=4, random_state=0).fit(train_features)
            majority = {}
            for cluster in range(self.k):
                members = y_train[clusters.labels_ == cluster]
                values, counts = np.unique(members, return_counts=True)
                majority[cluster] = str(values[counts.argmax()] if len(values) else y_train[0])
            predicted = np.array([majority[c] for c in clusters.predict(test_features)])
            self.classifier = (vectorizer, clusters, majority)
        else:
            classifier = LogisticRegression(max_iter=1000).fit(train_features, y_train)
            predicted = classifier.predict(test_features)
            self.classifier = (vectorizer, classifier)

        self.classes = sorted({str(c) for c in labels})
        precision, recall, f1, support = precision_recall_fscore_support(
            y_test, predicted, labels=self.classes, zero_division=0)
        self.accuracy = float((predicted == y_test).mean())
        self.metrics = {c: {"precision": float(p), "recall": float(r), "f1": float(f),
                            "support": int(s)}
                        for c, p, r, f, s in zip(self.classes, precision, recall, f1, support,
                                                 strict=True)}
        self.confusion = confusion_matrix(y_test, predicted, labels=self.classes)
        self.report_card()
        self.next(self.join)

    def report_card(self):
        """The train step's card: what a person checks after each spin."""
        current.card.append(Markdown(
            f"# {self.category}: {self.model}\n"
            f"Accuracy **{self.accuracy:.3f}** on {int(self.confusion.sum())} held-out products."))
        rows = [[c, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                 m["support"]] for c, m in self.metrics.items()]
        current.card.append(Table(rows, headers=["subcategory", "precision", "recall", "f1",
                                                 "support"]))
        current.card.append(Markdown("## Confusion matrix\nRows: true, columns: predicted, in "
                                     f"the order {', '.join(self.classes)}."))
        current.card.append(Image(heatmap(self.confusion), label="confusion matrix"))
        values = [{"subcategory": c, "metric": name, "value": m[name]}
                  for c, m in self.metrics.items() for name in ("precision", "recall", "f1")]
        current.card.append(VegaChart({
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": f"{self.category}: metrics per subcategory",
            "data": {"values": values},  # inline data: the card works offline
            "mark": "bar",
            "encoding": {
                "x": {"field": "subcategory", "type": "nominal"},
                "xOffset": {"field": "metric"},
                "y": {"field": "value", "type": "quantitative", "scale": {"domain": [0, 1]}},
                "color": {"field": "metric", "type": "nominal"},
            },
            "width": 320, "height": 200,
        }))

    @card
    @step
    def join(self, inputs):
        self.accuracies = {inp.category: inp.accuracy for inp in inputs}
        self.best = max(self.accuracies, key=self.accuracies.get)
        self.model = inputs[0].model
        ranked = sorted(self.accuracies.items(), key=lambda kv: -kv[1])
        current.card.append(Markdown(f"# Models compared ({self.model})\nBest: **{self.best}**"))
        current.card.append(Table([[c, f"{a:.3f}"] for c, a in ranked],
                                  headers=["category", "accuracy"]))
        self.next(self.end)

    @step
    def end(self):
        for category, accuracy in self.accuracies.items():
            print(f"{category:>10}  {accuracy:.3f}")
        print("best:", self.best)


if __name__ == "__main__":
    ProductCategoriesFlow()
