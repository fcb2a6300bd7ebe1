"""Values that replace the parents' artifacts in a spin:

    devd spin flow.py train --artifacts-module artifacts.py
"""

ARTIFACTS = {"model": "kmeans", "k": 15}
