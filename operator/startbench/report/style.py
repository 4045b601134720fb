"""The report's look, defined once: a colour per phase (every figure that shows phases uses these), a colour per
image, the marks for failed runs and merged spans, and the text sizes. Colours are Okabe and Ito's colour-blind
safe set for the phases and Paul Tol's muted set for the images, so the two never look alike."""

from __future__ import annotations

PHASE_COLOURS: dict[str, str] = {
    "scheduling": "#56B4E9",       # sky blue
    "waiting_to_pull": "#F0E442",  # yellow
    "pulling": "#E69F00",          # orange
    "create_start": "#009E73",     # bluish green
    "imports": "#0072B2",          # blue
    "device_init": "#CC79A7",      # reddish purple
    "first_step": "#D55E00",       # vermillion
}

PHASE_LABELS: dict[str, str] = {
    "scheduling": "scheduling", "waiting_to_pull": "waiting to pull", "pulling": "pulling",
    "create_start": "create + start", "imports": "imports", "device_init": "device init", "first_step": "first step",
}

IMAGE_COLOURS = ("#332288", "#117733", "#882255", "#44AA99", "#AA4499", "#999933", "#661100", "#6699CC")
FAILED_COLOUR = "#555555"   # the mark and text of a failed run
MERGED_HATCH = "////"       # a span covering several phases (a boundary was not observed)
EDGE_COLOUR = "#222222"

FONT_SIZE = 10
TITLE_SIZE = 12
WIDTH_IN = 11.0             # every figure's width, inches (readable in a 1400-pixel-wide screenshot)
DPI = 120                   # PNG resolution


def image_colour(images: list[str], image: str) -> str:
    """The colour of `image` among the benchmark's `images` (in spec order), the same in every figure."""
    index = images.index(image) if image in images else len(images)
    return IMAGE_COLOURS[index % len(IMAGE_COLOURS)]
