"""dualclip: power-set dual images and dual texts for compositional CLIP training.

Each workflow stage is one subpackage (data, parse, detect, inpaint, rewrite,
train, eval, report); each stage chooses a backend by name from the config.
"""

__version__ = "0.1.0"
