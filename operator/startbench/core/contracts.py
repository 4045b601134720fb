"""The names startbench's parts share, in one place (docs/contracts.md is the same list for people).

The operator, the in-pod workload's report, the local cluster's simulated nodes and the chart all agree on
these: change one only together with every user of it. Pure: constants and two small predicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- the API
GROUP = "startbench.dev"
VERSION = "v1alpha1"
KIND = "Benchmark"
PLURAL = "benchmarks"
SHORT_NAME = "sbench"
FINALIZER = f"{GROUP}/finalizer"
COMPONENT = "startbench-operator"  # the events' source and reporting component

# --- labels and annotations on the objects the operator creates
MANAGED_BY = ("app.kubernetes.io/managed-by", "startbench")
LABEL_BENCHMARK = f"{GROUP}/benchmark"
LABEL_RUN = f"{GROUP}/run"
LABEL_IMAGE = f"{GROUP}/image"
LABEL_CACHE = f"{GROUP}/cache"          # the cache state asked for
LABEL_RECORDS = f"{GROUP}/records"      # "true" on a records ConfigMap
ANNOTATION_CREATED_MS = f"{GROUP}/created-ms"  # operator's epoch ms just before the create call
ANNOTATION_NODE = f"{GROUP}/node"
ANNOTATION_REPETITION = f"{GROUP}/repetition"
ANNOTATION_AFTER = f"{GROUP}/after"
ANNOTATION_OBSERVATIONS = f"{GROUP}/observations"  # what the operator observed, persisted for a restart
ANNOTATION_CHUNK = f"{GROUP}/chunk"     # index of a records ConfigMap
# The cache evidence the operator takes right before it creates a run's pod (core/cache.py reads it back):
ANNOTATION_IMAGE_ON_NODE = f"{GROUP}/image-on-node"  # "true"/"false": the node listed the image (status.images)
ANNOTATION_NODE_DIGESTS = f"{GROUP}/node-digests"    # the digests of the image's repository the node listed
ANNOTATION_PURGED = f"{GROUP}/purged"                # "true": the operator removed the image from the node first
ANNOTATION_PULLED_BY = f"{GROUP}/image-pulled-by"    # an earlier run of the benchmark that put the image there
RECORDS_KEY = "records.json"            # the data key of a records ConfigMap

# --- the run pod
CONTAINER = "workload"                  # the one container of a run pod
RUN_UID = 1000                          # the user the workload runs as

# --- the timeline: one vocabulary, two spellings (snake_case in records and metrics, camelCase in the spec's
# thresholds and the status summaries)
PHASES = ("scheduling", "waiting_to_pull", "pulling", "create_start", "imports", "device_init", "first_step")
PHASE_CAMEL = {"scheduling": "scheduling", "waiting_to_pull": "waitingToPull", "pulling": "pulling",
               "create_start": "createStart", "imports": "imports", "device_init": "deviceInit",
               "first_step": "firstStep"}
PHASE_BY_CAMEL = {camel: snake for snake, camel in PHASE_CAMEL.items()}
TIME_TO_FIRST_STEP = "timeToFirstStep"  # the whole create-to-first-step time, as a threshold/summary metric

# --- cache states: asked (the spec's, the pod's pull policy) and observed (what happened, from evidence)
CACHE_ASKED = ("cold", "warm")
HIT, MISS, REVALIDATED, UNKNOWN = "hit", "miss", "revalidated", "unknown"
CACHE_OBSERVED = (HIT, MISS, REVALIDATED, UNKNOWN)  # revalidated: a pull that transferred no layer
OBSERVED_FOR_ASKED = {"cold": MISS, "warm": HIT}  # what a threshold's `cache: cold|warm` counts

# --- simulated nodes (the local cluster's KWOK nodes)
SIMULATED_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
SIM_CACHED_IMAGES = "sim.startbench.dev/images"  # node annotation: JSON list of the image references it holds


def is_simulated(node_annotations: Mapping[str, Any] | None) -> bool:
    """Whether a node with these annotations is simulated (KWOK): its pods run no container, so their runs end
    at container start with no in-pod report."""
    key, value = SIMULATED_NODE_ANNOTATION
    return isinstance(node_annotations, Mapping) and node_annotations.get(key) == value

