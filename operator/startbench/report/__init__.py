"""The results report (`startbench report`): a Benchmark and its run records in, one self-contained HTML page or
one figure (PNG or SVG) out. Pure: no Kubernetes, no network; `cli/report.py` reads the cluster.

- `style.py`: the one palette (a colour per phase, a colour per image) and the figures' sizes;
- `data.py`: what each figure and table shows, from the records (no plotting);
- `figures.py`: the matplotlib figures (object-oriented API, Agg canvas, no pyplot state);
- `html.py`: the page: figures as inline SVG, the spec, conditions, thresholds, images, nodes, the version.
"""
